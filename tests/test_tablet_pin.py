"""The tablet PIN: staff set it after their password, unlock the tablet with it, and after a few wrong
PINs it stops working until the password is used; it is kept only as an argon2 hash, and every
setting, unlock and failure is audited."""
from __future__ import annotations

import re

from sqlmodel import select

from core.auth import LOCK_AFTER
from core.models import AuditEvent, User
from core.tablet import PIN_TRIES
from tests.support import PASSWORD, login, post
from tests.test_confirm_steps import _chain_ok
from tests.test_consent import fresh
from tests.test_tablet_lock import _hand_over, _locked_screen

PIN = "480517"
CLINICIAN = "clinician@demo.glia.example"


def _user(db, email=CLINICIAN) -> User:
    fresh(db)
    return db.exec(select(User).where(User.email == email)).one()


def _audit(db, action) -> list[AuditEvent]:
    fresh(db)
    return db.exec(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)).all()


def _beside(html: str, name: str, message: str) -> bool:
    """The message sits in the element the field points at with aria-describedby."""
    return bool(re.search(rf'name="{name}"[^>]*aria-invalid="true"[^>]*aria-describedby="e-{name}"', html)) \
        and f'id="e-{name}">{message}</' in html


def _set_pin(app, client, pin=PIN):
    resp = post(app, client, "/account/tablet-pin", {"current": PASSWORD, "pin": pin, "confirm": pin})
    assert resp.status_code == 302, resp.text
    return resp


def test_a_pin_is_set_only_after_the_password_and_kept_as_a_hash(app, client, db):
    login(app, client, "clinician")
    assert "Set a tablet PIN" in client.get("/account/mfa").text
    page = client.get("/account/tablet-pin")
    assert page.status_code == 200 and 'id="f-pin"' in page.text

    wrong = post(app, client, "/account/tablet-pin", {"current": "not-my-password", "pin": PIN, "confirm": PIN})
    assert wrong.status_code == 422 and _beside(wrong.text, "current", "Your password is not right.")
    for pin, message in [("12345", "Use 6 to 12 digits."), ("123456", "Too easy to guess"),
                         ("777777", "Too easy to guess"), ("48o517", "Use digits only.")]:
        weak = post(app, client, "/account/tablet-pin", {"current": PASSWORD, "pin": pin, "confirm": pin})
        assert weak.status_code == 422 and message in weak.text and 'aria-describedby="e-pin"' in weak.text
    differ = post(app, client, "/account/tablet-pin", {"current": PASSWORD, "pin": PIN, "confirm": "480518"})
    assert differ.status_code == 422 and _beside(differ.text, "confirm", "The two PINs differ.")
    assert _user(db).tablet_pin_hash is None

    _set_pin(app, client)
    stored = _user(db).tablet_pin_hash
    assert stored.startswith("$argon2id$") and PIN not in stored
    assert "Change or remove it" in client.get("/account/mfa").text
    assert [e.outcome for e in _audit(db, "auth.tablet_pin_failed")] == ["denied"]
    assert [e.detail for e in _audit(db, "auth.tablet_pin_set")] == ["new"]

    refused = post(app, client, "/account/tablet-pin/remove", {"password": "wrong-password-here"})
    assert refused.status_code == 422 and _beside(refused.text, "password", "Your password is not right.")
    assert post(app, client, "/account/tablet-pin/remove", {"password": PASSWORD}).status_code == 302
    assert _user(db).tablet_pin_hash is None and len(_audit(db, "auth.tablet_pin_removed")) == 1


def test_the_tablet_unlocks_with_the_pin(app, client, db):
    login(app, client, "clinician")
    _set_pin(app, client)
    patient, _t, _page = _hand_over(app, client, db, who="clinician")
    locked = client.get("/patients/")
    _locked_screen(locked)
    assert 'id="f-pin"' in locked.text and 'id="f-password"' in locked.text and "Unlock with PIN" in locked.text

    wrong = post(app, client, "/tablet/unlock", {"pin": "111112", "next": "/patients/"})
    assert wrong.status_code == 422 and _beside(wrong.text, "pin", "That PIN is not right.")
    _locked_screen(client.get("/patients/"))
    back = post(app, client, "/tablet/unlock", {"pin": PIN, "next": "/patients/"})
    assert back.status_code == 302 and back.headers["Location"] == "/patients/"
    assert 'class="mainnav"' in client.get("/patients/").text
    user = _user(db)
    assert (user.pin_failures, user.failed_logins) == (0, 0)
    unlocked = _audit(db, "tablet.unlocked")
    assert [(e.detail, e.patient_id) for e in unlocked] == [("with PIN", patient.id)]
    assert [e.detail for e in _audit(db, "tablet.unlock_failed")] == ["with PIN"]
    assert _chain_ok(app)


def test_wrong_pins_switch_the_pin_off_until_the_password_is_used(app, client, db):
    assert PIN_TRIES < LOCK_AFTER  # the PIN runs out before the account locks
    login(app, client, "clinician")
    _set_pin(app, client)
    _hand_over(app, client, db, who="clinician")
    for _ in range(PIN_TRIES - 1):
        assert post(app, client, "/tablet/unlock", {"pin": "902214"}).status_code == 422
    last = post(app, client, "/tablet/unlock", {"pin": "902214"})
    assert last.status_code == 422
    assert _beside(last.text, "password", f"That PIN is not right. After {PIN_TRIES} wrong PINs, unlock with your password.")
    assert 'id="f-pin"' not in last.text  # only the password form is left
    user = _user(db)
    assert (user.pin_failures, user.failed_logins) == (PIN_TRIES, PIN_TRIES)  # each counts towards the lockout too

    right_pin = post(app, client, "/tablet/unlock", {"pin": PIN})  # even the right PIN no longer opens it
    assert right_pin.status_code == 422 and "The PIN is switched off" in right_pin.text
    _locked_screen(client.get("/patients/"))
    assert post(app, client, "/tablet/unlock", {"password": PASSWORD}).status_code == 302
    assert _user(db).pin_failures == 0
    assert [e.detail for e in _audit(db, "tablet.unlocked")] == ["with password"]

    _hand_over(app, client, db, who="clinician")  # the password switched the PIN on again
    assert post(app, client, "/tablet/unlock", {"pin": PIN}).status_code == 302


def test_wrong_pins_and_passwords_together_lock_the_account(app, client, db):
    login(app, client, "clinician")
    _set_pin(app, client)
    _hand_over(app, client, db, who="clinician")
    for _ in range(PIN_TRIES):
        post(app, client, "/tablet/unlock", {"pin": "902214"})
    for _ in range(LOCK_AFTER - PIN_TRIES - 1):
        assert post(app, client, "/tablet/unlock", {"password": "guess-guess-guess"}).status_code == 422
    out = post(app, client, "/tablet/unlock", {"password": "guess-guess-guess"})
    assert out.status_code == 302 and out.headers["Location"].endswith("/login")
    assert client.get("/patients/").status_code == 302
    assert _user(db).locked_until is not None


def test_without_a_pin_only_the_password_form_is_shown(app, client, db):
    _hand_over(app, client, db, who="clinician")
    locked = client.get("/patients/")
    assert 'id="f-pin"' not in locked.text and 'id="f-password"' in locked.text
    refused = post(app, client, "/tablet/unlock", {"pin": PIN})
    assert refused.status_code == 422
    assert _beside(refused.text, "password", "You have not set a tablet PIN: unlock with your password.")
    empty = post(app, client, "/tablet/unlock", {})
    assert empty.status_code == 422 and _beside(empty.text, "password", "Enter your PIN or your password.")
