"""Login: generic errors, argon2id, long passwords, lockout, per-IP throttle, mass assignment."""
from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import text

from tests.security_support import audit_count, engine_of, scalar
from tests.support import PASSWORD, login, post

CLINICIAN = "clinician@demo.glia.example"


def _user(app, email):
    with engine_of(app).connect() as conn:
        return conn.execute(text('SELECT * FROM "user" WHERE email = :e'), {"e": email}).mappings().one()


def _set_user(app, email, **values):
    sets = ", ".join(f"{k} = :{k}" for k in values)
    with engine_of(app).begin() as conn:
        conn.execute(text(f'UPDATE "user" SET {sets} WHERE email = :email'), {**values, "email": email})


def _without_token(html: str) -> str:
    return re.sub(r'name="csrf_token" value="[^"]*"', "", html)


def test_unknown_user_and_wrong_password_get_the_same_answer(app, client):
    unknown = post(app, client, "/login", {"email": "nobody@demo.glia.example", "password": PASSWORD})
    wrong = post(app, client, "/login", {"email": CLINICIAN, "password": "not-the-password-2026"})
    assert unknown.status_code == wrong.status_code == 401
    assert _without_token(unknown.text) == _without_token(wrong.text)
    assert "do not match" in wrong.text


def test_passwords_are_stored_as_argon2id_and_long_ones_work_untruncated(app, client):
    assert _user(app, CLINICIAN)["password_hash"].startswith("$argon2id$")
    login(app, client, "clinician")
    long_password = "correct horse battery staple " * 4 + "ñ-Ψ-李"  # 120+ characters
    resp = post(app, client, "/account/password",
                {"current": PASSWORD, "new": long_password, "confirm": long_password})
    assert resp.status_code == 302
    stored = _user(app, CLINICIAN)["password_hash"]
    assert stored.startswith("$argon2id$") and long_password not in stored
    other = app.test_client()
    assert post(app, other, "/login", {"email": CLINICIAN, "password": long_password[:72]}).status_code == 401
    assert post(app, other, "/login", {"email": CLINICIAN, "password": long_password}).status_code == 302


def test_five_failures_lock_the_account_until_the_lock_expires(app, client):
    before = audit_count(app)
    for _ in range(5):
        assert post(app, client, "/login", {"email": CLINICIAN, "password": "wrong-password-0000"}).status_code == 401
    failures = scalar(app, "SELECT count(*) FROM audit_event WHERE action = 'auth.login_failed' AND outcome = 'denied'")
    assert failures == 5 and audit_count(app) == before + 5
    locked = post(app, client, "/login", {"email": CLINICIAN, "password": PASSWORD})
    assert locked.status_code == 401 and "do not match" in locked.text  # no hint that it is locked
    assert client.get("/").status_code == 302

    _set_user(app, CLINICIAN, locked_until=datetime(2000, 1, 1))  # the 15 minutes pass
    login(app, client, "clinician")
    assert client.get("/").status_code == 200


def test_failed_logins_are_audited_without_the_typed_email(app, client):
    post(app, client, "/login", {"email": "stranger@evil.example", "password": "guess-guess-guess"})
    with engine_of(app).connect() as conn:
        row = conn.execute(text("SELECT * FROM audit_event ORDER BY id DESC LIMIT 1")).mappings().one()
    assert row["action"] == "auth.login_failed" and row["outcome"] == "denied"
    assert row["ip"] == "127.0.0.1"
    assert "stranger" not in " ".join(str(v) for v in row.values())


def test_login_attempts_per_ip_are_throttled(make_app):
    app = make_app(GLIA_LOGIN_RATE="3 per minute")
    client = app.test_client()
    for _ in range(3):
        post(app, client, "/login", {"email": CLINICIAN, "password": "wrong-password-0000"})
    throttled = post(app, client, "/login", {"email": CLINICIAN, "password": PASSWORD})
    assert throttled.status_code == 429
    assert throttled.headers["X-Content-Type-Options"] == "nosniff"
    elsewhere = app.test_client()  # another address is not affected
    resp = post(app, elsewhere, "/login", {"email": CLINICIAN, "password": PASSWORD},
                environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert resp.status_code == 302


def test_extra_fields_on_login_and_password_forms_are_ignored(app, client):
    before = _user(app, CLINICIAN)
    post(app, client, "/login", {"email": CLINICIAN, "password": PASSWORD, "role": "admin",
                                 "clinic_id": "2", "active": "0", "failed_logins": "99"})
    assert client.get("/admin/plugins").status_code == 403
    new = "a fresh passphrase for 2026"
    resp = post(app, client, "/account/password", {"current": PASSWORD, "new": new, "confirm": new,
                                                   "role": "admin", "active": "0", "clinic_id": "2",
                                                   "email": "admin@demo.glia.example"})
    assert resp.status_code == 302
    after = _user(app, CLINICIAN)
    for column in ("role", "active", "email", "name", "failed_logins"):
        assert after[column] == before[column], column
    clinics = scalar(app, "SELECT count(*) FROM membership WHERE user_id = :u", u=before["id"])
    assert clinics == 1


def test_password_change_needs_the_current_password(app, client):
    login(app, client, "clinician")
    before = _user(app, CLINICIAN)["password_hash"]
    resp = post(app, client, "/account/password", {"current": "not it at all", "new": "x" * 20, "confirm": "x" * 20})
    assert resp.status_code == 422
    assert _user(app, CLINICIAN)["password_hash"] == before
    assert scalar(app, "SELECT count(*) FROM audit_event WHERE action = 'auth.password_change_failed'") == 1


def test_forwarded_addresses_count_only_behind_a_configured_proxy(make_app):
    spoofed = {"X-Forwarded-For": "203.0.113.9"}
    for hops, expected in ((0, "127.0.0.1"), (1, "203.0.113.9")):
        app = make_app(GLIA_PROXY_HOPS=hops)
        client = app.test_client()
        post(app, client, "/login", {"email": CLINICIAN, "password": "wrong-password-0000"}, headers=spoofed)
        assert scalar(app, "SELECT ip FROM audit_event ORDER BY id DESC LIMIT 1") == expected
