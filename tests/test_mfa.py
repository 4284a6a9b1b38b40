"""Second factor (TOTP and recovery codes), the password policy, and production's secret-key refusals."""
from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone

import pyotp
import pytest
from click.testing import CliRunner
from sqlmodel import select

from core import create_app
from core.auth import password_problem
from core.cli import cli
from core.config import ConfigError
from core.demo import DEMO_PASSWORD
from core.models import AuditEvent, Clinic, MfaFactor, MfaRecoveryCode, User
from tests.conftest import BUILTIN
from tests.example_plugins import fresh
from tests.support import PASSWORD, login, post

CLINICIAN = "clinician@demo.glia.example"
ADMIN = "admin@demo.glia.example"


def _user(db, email) -> User:
    fresh(db)
    return db.exec(select(User).where(User.email == email)).one()


def _step() -> int:
    return pyotp.TOTP(pyotp.random_base32()).timecode(datetime.now(timezone.utc))


def enrol(app, client) -> tuple[pyotp.TOTP, int, list[str]]:
    """Through the pages, as a user would: start, read the key off the page, confirm with a code."""
    assert post(app, client, "/account/mfa/start").status_code == 302
    page = client.get("/account/mfa/setup").get_data(as_text=True)
    assert 'src="data:image/svg+xml;base64,' in page
    totp = pyotp.TOTP(re.search(r'id="mfa-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", ""))
    step = _step()
    resp = post(app, client, "/account/mfa/setup", {"code": totp.generate_otp(step)})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    codes = re.findall(r'<span class="code">([a-z2-9]{5}-[a-z2-9]{5})</span>', resp.get_data(as_text=True))
    return totp, step, codes


def second_step(app, client, email, code, password=PASSWORD):
    first = post(app, client, "/login", {"email": email, "password": password})
    assert first.status_code == 302 and first.location.endswith("/login/code")
    return post(app, client, "/login/code", {"code": code})


def test_enrolment_shows_a_qr_code_and_switches_on_only_with_a_right_code(app, client, db):
    login(app, client, "clinician")
    assert "Set up an authenticator app" in client.get("/account/mfa").get_data(as_text=True)
    post(app, client, "/account/mfa/start")
    page = client.get("/account/mfa/setup").get_data(as_text=True)
    secret = re.search(r'id="mfa-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    wrong = post(app, client, "/account/mfa/setup", {"code": "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"})
    assert wrong.status_code == 422 and "does not match" in wrong.get_data(as_text=True)
    assert _user(db, CLINICIAN).mfa_enabled_at is None

    right = post(app, client, "/account/mfa/setup", {"code": pyotp.TOTP(secret).now()})
    codes = re.findall(r'<span class="code">([a-z2-9]{5}-[a-z2-9]{5})</span>', right.get_data(as_text=True))
    assert right.status_code == 200 and len(set(codes)) == 10
    user = _user(db, CLINICIAN)
    assert user.mfa_enabled_at is not None
    hashes = db.exec(select(MfaRecoveryCode.code_hash).where(MfaRecoveryCode.user_id == user.id)).all()
    assert len(hashes) == 10 and all(h.startswith("$argon2id$") for h in hashes)
    assert not any(c in h for c in codes for h in hashes)
    assert "10 of 10 recovery codes left" in client.get("/account/mfa").get_data(as_text=True)


def test_login_asks_for_the_code_and_the_half_signed_in_state_grants_nothing(app, client, db):
    login(app, client, "clinician")
    totp, step, _codes = enrol(app, client)
    post(app, client, "/logout")

    # without a factor enrolled, a user signs in with the password alone
    other = app.test_client()
    assert login(app, other, "frontdesk").location.endswith("/")

    first = post(app, client, "/login", {"email": CLINICIAN, "password": PASSWORD})
    assert first.location.endswith("/login/code")
    for url in ("/", "/patients/", "/account/mfa", "/account/password"):
        assert client.get(url).status_code == 302 and "/login" in client.get(url).location
    wrong = post(app, client, "/login/code", {"code": "12345"})
    assert wrong.status_code == 401 and "not right" in wrong.get_data(as_text=True)
    # the code that confirmed the enrolment is spent: the same step never signs in
    assert post(app, client, "/login/code", {"code": totp.generate_otp(step)}).status_code == 401
    ok = post(app, client, "/login/code", {"code": totp.generate_otp(step + 1)})
    assert ok.status_code == 302 and ok.location.endswith("/")
    assert client.get("/").status_code == 200

    post(app, client, "/logout")
    # the same code again, within its window: refused
    assert second_step(app, client, CLINICIAN, totp.generate_otp(step + 1)).status_code == 401
    assert client.get("/").status_code == 302
    fresh(db)
    assert len(db.exec(select(AuditEvent).where(AuditEvent.action == "auth.mfa_failed")).all()) == 3


def test_a_recovery_code_signs_in_once(app, client, db):
    login(app, client, "clinician")
    _totp, _, codes = enrol(app, client)
    post(app, client, "/logout")
    ok = second_step(app, client, CLINICIAN, codes[3].upper().replace("-", " "))
    assert ok.status_code == 302
    assert "9 are left" in client.get("/").get_data(as_text=True)
    post(app, client, "/logout")
    assert second_step(app, client, CLINICIAN, codes[3]).status_code == 401
    assert second_step(app, client, CLINICIAN, codes[4]).status_code == 302
    user = _user(db, CLINICIAN)
    used = db.exec(select(MfaRecoveryCode).where(MfaRecoveryCode.user_id == user.id,
                                                 MfaRecoveryCode.used_at.is_not(None))).all()
    assert len(used) == 2


def test_two_sign_ins_racing_with_one_code_let_only_one_in(app, client):
    """Each in its own thread and connection; the code is marked used by the UPDATE that checks it."""
    login(app, client, "clinician")
    totp, step, codes = enrol(app, client)
    post(app, client, "/logout")
    for code in (codes[0], totp.generate_otp(step + 1)):
        clients = [app.test_client(), app.test_client()]
        for c in clients:
            post(app, c, "/login", {"email": CLINICIAN, "password": PASSWORD})
        barrier, answers = threading.Barrier(2), []

        def race(c, code=code, barrier=barrier, answers=answers):
            barrier.wait()
            answers.append(post(app, c, "/login/code", {"code": code}).status_code)

        threads = [threading.Thread(target=race, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(answers) == [302, 401], code


def test_the_code_step_is_throttled_like_the_password(make_app):
    app = make_app(GLIA_LOGIN_RATE="3 per minute")
    client = app.test_client()
    login(app, client, "clinician")
    totp, step, _ = enrol(app, client)
    post(app, client, "/logout")
    post(app, client, "/login", {"email": CLINICIAN, "password": PASSWORD})
    for _ in range(3):
        assert post(app, client, "/login/code", {"code": "999999"}).status_code == 401
    assert post(app, client, "/login/code", {"code": totp.generate_otp(step + 1)}).status_code == 429


def test_admins_and_managers_must_enrol_before_anything_else(make_app, db):
    app = make_app(GLIA_MFA_ROLES="admin,manager")
    client = app.test_client()
    resp = login(app, client, "admin")
    assert resp.location.endswith("/account/mfa")
    for url in ("/", "/patients/", "/settings/clinic", "/account/password"):
        assert client.get(url).location.endswith("/account/mfa"), url
    assert post(app, client, "/settings/security", {"all_staff": "1"}).location.endswith("/account/mfa")
    page = client.get("/account/mfa").get_data(as_text=True)
    assert "requires a second sign-in step" in page
    _totp, _, codes = enrol(app, client)
    assert len(codes) == 10
    assert client.get("/patients/").status_code == 200
    # required: it can be replaced, not switched off
    off = post(app, client, "/account/mfa/disable", {"password": PASSWORD})
    assert off.status_code == 422 and _user(db, ADMIN).mfa_enabled_at is not None

    clinician = app.test_client()
    assert login(app, clinician, "clinician").location.endswith("/")
    assert clinician.get("/patients/").status_code == 200


def test_a_clinic_can_require_it_of_all_staff(app, client, db):
    clinician = app.test_client()
    login(app, clinician, "clinician")
    assert clinician.get("/patients/").status_code == 200

    login(app, client, "manager")  # of Stillwater, as the clinician
    assert "checkbox" in client.get("/settings/security").get_data(as_text=True)
    assert post(app, client, "/settings/security", {"all_staff": "1"}).status_code == 302
    fresh(db)
    assert db.exec(select(Clinic).where(Clinic.slug == "stillwater")).one().mfa_all_staff
    # the clinician's next page, already signed in, is the enrolment
    assert clinician.get("/patients/").location.endswith("/account/mfa")
    assert login(app, app.test_client(), "frontdesk").location.endswith("/account/mfa")
    enrol(app, clinician)
    assert clinician.get("/patients/").status_code == 200

    # the manager is staff too
    assert post(app, client, "/settings/security", {}).location.endswith("/account/mfa")
    enrol(app, client)
    post(app, client, "/settings/security", {})
    fresh(db)
    assert not db.exec(select(Clinic).where(Clinic.slug == "stillwater")).one().mfa_all_staff
    assert login(app, app.test_client(), "frontdesk").location.endswith("/")


def test_a_user_may_switch_it_off_with_the_password(app, client, db):
    login(app, client, "clinician")
    enrol(app, client)
    assert post(app, client, "/account/mfa/disable", {"password": "not my password at all"}).status_code == 422
    assert post(app, client, "/account/mfa/disable", {"password": PASSWORD}).status_code == 302
    user = _user(db, CLINICIAN)
    assert user.mfa_enabled_at is None
    assert not db.exec(select(MfaRecoveryCode).where(MfaRecoveryCode.user_id == user.id)).all()
    post(app, client, "/logout")
    assert login(app, client, "clinician").location.endswith("/")


def test_reset_mfa_from_the_shell(make_app, db_url, db):
    app = make_app(GLIA_MFA_ROLES="admin,manager")
    client = app.test_client()
    login(app, client, "admin")
    enrol(app, client)
    assert client.get("/").status_code == 200

    out = CliRunner().invoke(cli, ["users", "reset-mfa", ADMIN.upper()], env={"GLIA_DATABASE_URL": db_url},
                             catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "Second factor removed for admin@demo.glia.example" in out.output
    user = _user(db, ADMIN)
    assert user.mfa_enabled_at is None
    assert not db.exec(select(MfaFactor).where(MfaFactor.user_id == user.id)).all()
    assert not db.exec(select(MfaRecoveryCode).where(MfaRecoveryCode.user_id == user.id)).all()
    row = db.exec(select(AuditEvent).where(AuditEvent.action == "auth.mfa_reset")).one()
    assert row.object_id == str(user.id) and row.role == "system"
    assert client.get("/").status_code == 302  # the old session ended
    # the password alone signs in again, straight to a new enrolment
    assert login(app, app.test_client(), "admin").location.endswith("/account/mfa")

    missing = CliRunner().invoke(cli, ["users", "reset-mfa", "nobody@example.org"], env={"GLIA_DATABASE_URL": db_url})
    assert missing.exit_code != 0 and "no user with email" in missing.output


# -- password policy -----------------------------------------------------------------------

def test_weak_passwords_are_refused_with_a_reason_and_the_demo_password_passes(app, client):
    assert password_problem(DEMO_PASSWORD, email="admin@demo.glia.example") is None
    assert "too easy to guess" in password_problem("password1234")
    assert "too easy to guess" in password_problem("Password1234!")
    assert "too easy to guess" in password_problem("aaaaaaaaaaaaaaaaaaaa")
    assert "at least 12" in password_problem("x7#Qp!")
    assert "at most 1024" in password_problem("long horse battery " * 60)
    assert password_problem("okafor123456") is None
    assert "too easy to guess" in password_problem("okafor123456", name="Jane Okafor")  # the user's own name
    assert password_problem("correct horse battery staple " * 4) is None  # long ones are judged on 72 characters

    login(app, client, "clinician")
    resp = post(app, client, "/account/password", {"current": PASSWORD, "new": "password1234", "confirm": "password1234"})
    assert resp.status_code == 422
    assert "That password is too easy to guess: This is a very common password" in resp.get_data(as_text=True)


# -- production refuses a weak or missing secret key at every entry point ------------------------

WEAK = ["", "dev", "change-me", "a" * 40, "short-but-random-x9"]


def _env(db_url, **extra):
    env = {k: v for k, v in os.environ.items() if k != "GLIA_SECRET_KEY"}
    return {**env, "GLIA_ENV": "production", "GLIA_DATABASE_URL": db_url, **extra}


@pytest.mark.parametrize("secret", WEAK)
def test_the_wsgi_app_refuses_a_weak_secret(db_url, monkeypatch, secret):
    monkeypatch.delenv("GLIA_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="GLIA_SECRET_KEY"):
        create_app({"GLIA_ENV": "production", "GLIA_DATABASE_URL": db_url, "SECRET_KEY": secret}, plugins=BUILTIN)


def test_gunicorn_refuses_a_weak_secret(db_url, tmp_path):
    out = subprocess.run([sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "core:create_app()"],
                         env=_env(db_url, GLIA_SECRET_KEY="dev"), cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0
    assert "refusing to start: set GLIA_SECRET_KEY" in out.stderr


@pytest.mark.parametrize("secret", ["", "dev"])
@pytest.mark.parametrize("command", [["run"], ["demo"]])
def test_glia_run_and_demo_refuse_production_with_a_weak_secret(db_url, tmp_path, command, secret):
    out = subprocess.run([sys.executable, "-c", "from core.cli import main; main()", *command, "--port", "1"],
                         env=_env(db_url, GLIA_SECRET_KEY=secret), cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "error: refusing to start: set GLIA_SECRET_KEY" in out.stderr
    assert "Demo database" not in out.stdout  # refused before any work


def test_glia_run_serves_production_with_a_strong_secret(db_url, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", "from core.cli import main; main()", "run", "--port", str(port)],
                            env=_env(db_url, GLIA_SECRET_KEY=secrets.token_hex(32)), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.2)
        else:
            pytest.fail("glia run did not answer")
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_demo_keeps_its_own_key_in_demo_mode(db_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("GLIA_SECRET_KEY", "GLIA_ENV")}
    out = subprocess.run([sys.executable, "-c", "from core.cli import main; main()", "demo", "--no-serve"],
                         env={**env, "GLIA_DATABASE_URL": db_url}, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert len((tmp_path / "instance" / "secret_key").read_text().strip()) == 64
