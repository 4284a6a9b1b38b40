"""TOTP secrets are sealed at rest (core.mfa): the column never holds the base32 secret, sign-in with a
code still works, a row stored before sealing is sealed on its next use, and a server whose key
changed refuses authenticator codes with a clear message instead of failing open or answering 500."""
from __future__ import annotations

from datetime import datetime, timezone

import pyotp
from sqlalchemy import text
from sqlmodel import select

from core import mfa
from core.db import session_scope
from core.models import AuditEvent, MfaFactor
from tests.support import PASSWORD, login, post
from tests.test_mfa import CLINICIAN, _user, enrol, second_step
from tests.example_plugins import fresh


def _raw_secret(app, user_id) -> str:
    with app.extensions["glia"].engine.connect() as conn:
        return conn.execute(text("SELECT secret FROM mfa_factor WHERE user_id = :u"), {"u": user_id}).scalar_one()


def test_the_secret_is_sealed_in_the_database_and_codes_still_sign_in(app, client, db):
    login(app, client, "clinician")
    totp, step, _codes = enrol(app, client)
    post(app, client, "/logout")
    user = _user(db, CLINICIAN)
    raw = _raw_secret(app, user.id)
    assert raw.startswith("g1:") and totp.secret not in raw and totp.secret.lower() not in raw.lower()
    ok = second_step(app, client, CLINICIAN, totp.generate_otp(step + 1))
    assert ok.status_code == 302 and client.get("/").status_code == 200


def test_a_secret_stored_before_sealing_signs_in_and_is_then_sealed(app, client, db):
    login(app, client, "clinician")
    totp, step, _codes = enrol(app, client)
    post(app, client, "/logout")
    user = _user(db, CLINICIAN)
    with session_scope(app.extensions["glia"].engine) as s:  # as rows were written before migration 0014
        s.exec(text("UPDATE mfa_factor SET secret = :s WHERE user_id = :u"), params={"s": totp.secret, "u": user.id})
    assert _raw_secret(app, user.id) == totp.secret
    assert second_step(app, client, CLINICIAN, totp.generate_otp(step + 1)).status_code == 302
    raw = _raw_secret(app, user.id)
    assert raw.startswith("g1:") and totp.secret not in raw
    fresh(db)
    with app.app_context():  # sealed under this server's key: it opens to the same secret
        assert mfa.unseal(db.exec(select(MfaFactor).where(MfaFactor.user_id == user.id)).one()) == totp.secret


def test_a_server_with_another_key_refuses_codes_and_says_why(app, client, db, make_app):
    login(app, client, "clinician")
    totp, step, codes = enrol(app, client)
    post(app, client, "/logout")
    other = make_app(GLIA_MFA_KEY="a-different-key-" + "k" * 32)
    browser = other.test_client()
    code = totp.generate_otp(pyotp.TOTP(totp.secret).timecode(datetime.now(timezone.utc)))
    refused = second_step(other, browser, CLINICIAN, code)
    assert refused.status_code == 401
    assert "cannot check authenticator codes right now" in refused.text and 'aria-describedby="e-code"' in refused.text
    assert browser.get("/").status_code == 302  # not signed in
    fresh(db)
    assert len(db.exec(select(AuditEvent).where(AuditEvent.action == "auth.mfa_key_mismatch")).all()) == 1
    user = _user(db, CLINICIAN)
    assert db.exec(select(MfaFactor.last_step).where(MfaFactor.user_id == user.id)).one() == step
    # recovery codes are hashes, not sealed: they still let the user in, as the message says
    assert post(other, browser, "/login/code", {"code": codes[0]}).status_code == 302
    assert browser.get("/").status_code == 200
    # and the right key still opens it
    post(app, client, "/logout")
    assert second_step(app, client, CLINICIAN, totp.generate_otp(step + 1), password=PASSWORD).status_code == 302
