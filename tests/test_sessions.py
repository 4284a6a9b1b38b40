"""Server-side sessions: fixation, logout replay, timeouts, deactivation, cookie flags, next=."""
from __future__ import annotations

import secrets
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from core.models import utcnow
from tests.security_support import engine_of
from tests.support import PASSWORD, csrf_token, login, post

CLINICIAN = "clinician@demo.glia.example"


def _signed_out(resp) -> bool:
    return resp.status_code == 302 and urlsplit(resp.headers["Location"]).path == "/login"


def _cookie(app, client):
    return client.get_cookie(app.config["SESSION_COOKIE_NAME"])


def _sql(app, sql, **params):
    with engine_of(app).begin() as conn:
        conn.execute(text(sql), params)


def _live_session_id(app, email=CLINICIAN) -> str:
    with engine_of(app).connect() as conn:
        return conn.execute(text(
            'SELECT s.id FROM user_session s JOIN "user" u ON u.id = s.user_id '
            "WHERE u.email = :e AND s.ended_at IS NULL ORDER BY s.created_at DESC"), {"e": email}).scalars().first()


def test_login_replaces_a_planted_session(app, client):
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker"
        sess["sid"] = "attacker-chosen-session-id"
        sess["csrf_token"] = "attacker-known-token"
    planted = _cookie(app, client).value
    post(app, client, "/login", {"email": CLINICIAN, "password": PASSWORD})
    assert _cookie(app, client).value != planted
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess["sid"] == _live_session_id(app) != "attacker-chosen-session-id"
        assert sess.get("csrf_token") != "attacker-known-token"


def test_a_cookie_copied_before_logout_stops_working(app, client):
    login(app, client, "clinician")
    stolen = _cookie(app, client).value
    assert post(app, client, "/logout").status_code == 302
    replay = app.test_client()
    replay.set_cookie(app.config["SESSION_COOKIE_NAME"], stolen)
    assert _signed_out(replay.get("/"))


@pytest.mark.parametrize("column, age, ends", [
    ("last_seen_at", timedelta(minutes=14), False),
    ("last_seen_at", timedelta(minutes=16), True),
    ("created_at", timedelta(hours=12, minutes=1), True),
])
def test_idle_and_absolute_timeouts(app, client, column, age, ends):
    login(app, client, "clinician")
    sid = _live_session_id(app)
    _sql(app, f"UPDATE user_session SET {column} = :t WHERE id = :sid", t=(utcnow() - age).replace(tzinfo=None), sid=sid)
    assert _signed_out(client.get("/")) is ends
    if ends:  # ended on the server, not just refused once
        assert _live_session_id(app) is None
        _sql(app, "UPDATE user_session SET last_seen_at = :t, created_at = :t WHERE id = :sid",
             t=utcnow().replace(tzinfo=None), sid=sid)
        assert _signed_out(client.get("/"))


def test_deactivated_user_is_signed_out_on_the_next_request(app, client):
    login(app, client, "clinician")
    assert client.get("/").status_code == 200
    _sql(app, 'UPDATE "user" SET active = :f WHERE email = :e', f=False, e=CLINICIAN)  # as the admin does
    assert _signed_out(client.get("/"))
    assert post(app, app.test_client(), "/login", {"email": CLINICIAN, "password": PASSWORD}).status_code == 401


def test_password_change_ends_the_other_sessions(app):
    laptop, stolen = app.test_client(), app.test_client()
    login(app, laptop, "clinician")
    login(app, stolen, "clinician")
    new = "a brand new passphrase 2026"
    assert post(app, laptop, "/account/password", {"current": PASSWORD, "new": new, "confirm": new}).status_code == 302
    assert _signed_out(stolen.get("/"))
    assert laptop.get("/").status_code == 200


def test_session_cookie_flags_in_testing_and_production(make_app):
    app = make_app()
    resp = login(app, app.test_client(), "clinician")
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("glia_session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie

    prod = make_app(GLIA_ENV="production", SECRET_KEY=secrets.token_hex(32))
    client = prod.test_client()
    page = client.get("/login", base_url="https://localhost")
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    resp = client.post("/login", base_url="https://localhost", headers={"Referer": "https://localhost/login"},
                       data={"csrf_token": csrf_token(prod, client), "email": CLINICIAN, "password": PASSWORD})
    assert resp.status_code == 302
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("__Host-glia=")
    for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert flag in cookie
    assert "Domain=" not in cookie


@pytest.mark.parametrize("target", ["https://evil.example", "//evil.example", "/\\evil.example",
                                    "/\t/evil.example", "https:/evil.example", "javascript:alert(1)"])
def test_next_never_leaves_the_site(app, client, target):
    resp = post(app, client, "/login", {"email": CLINICIAN, "password": PASSWORD, "next": target})
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/"


def test_next_keeps_a_local_path(app, client):
    assert urlsplit(client.get("/patients/").headers["Location"]).query == "next=%2Fpatients%2F"
    resp = post(app, client, "/login", {"email": CLINICIAN, "password": PASSWORD, "next": "/patients/"})
    assert resp.headers["Location"] == "/patients/"
