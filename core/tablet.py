"""Tablet mode: while a staff member's device is handed to a patient (to sign a consent, say),
only that patient's tablet pages answer; every other page of the app shows the lock screen until
the signed-in staff member unlocks it with their password or their tablet PIN.

The lock is kept on the server-side sign-in session row, not in the cookie, so no cookie trick
lifts it. Locking only takes access away, so the tablet page's GET may set it; unlocking is a POST
with the password or PIN and the CSRF token (core.views.tablet_unlock).

A PIN is short, so it gets few guesses: after PIN_TRIES wrong ones in a row it stops working until
the password unlocks the tablet (or signs in), and each wrong one also counts towards the account's
lockout, as a wrong password does.
"""
from __future__ import annotations

from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, g, render_template, request
from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value

from core import audit
from core.db import later
from core.models import User, UserSession

PIN_TRIES = 3
PIN_MIN, PIN_MAX = 6, 12


def tablet_page(view):
    """A page the patient may use on the locked tablet: only for the patient it is locked to
    (the route's ``patient_id``)."""
    view.glia_tablet = True
    return view


def while_locked(view):
    """A staff page that works on a locked tablet without naming a patient (the unlock itself)."""
    view.glia_while_locked = True
    return view


def locked_patient() -> int | None:
    us = g.get("user_session")
    return us.tablet_patient_id if us is not None else None


def _set(patient_id: int | None) -> None:
    us = g.user_session
    sid = us.id
    set_committed_value(us, "tablet_patient_id", patient_id)
    later(lambda s: s.exec(update(UserSession).where(UserSession.id == sid).values(tablet_patient_id=patient_id)))


def lock(patient) -> None:
    """Hand the device to ``patient``: audited once, when the lock starts."""
    if locked_patient() == patient.id:
        return
    _set(patient.id)
    audit.record("tablet.locked", object_type="patient", object_id=patient.id, patient_id=patient.id)


def unlock(method: str) -> None:
    """Lift the lock; ``method`` (password or PIN) goes into the audit row."""
    patient_id = locked_patient()
    _set(None)
    audit.record("tablet.unlocked", object_type="patient", object_id=patient_id, patient_id=patient_id,
                 detail=f"with {method}")


def pin_usable(user: User) -> bool:
    return user.tablet_pin_hash is not None and user.pin_failures < PIN_TRIES


def pin_problem(pin: str) -> str | None:
    """Why a PIN cannot be used, or None: digits only, long enough, not one digit or a plain run."""
    if not (pin.isascii() and pin.isdigit()):
        return "Use digits only."
    if not PIN_MIN <= len(pin) <= PIN_MAX:
        return f"Use {PIN_MIN} to {PIN_MAX} digits."
    steps = {(int(b) - int(a)) % 10 for a, b in zip(pin, pin[1:])}
    if len(steps) == 1 and steps <= {0, 1, 9}:
        return "Too easy to guess (a repeated digit or a run such as 123456): choose another."
    return None


def check_pin(user: User, pin: str) -> bool:
    from core.auth import hasher

    if user.tablet_pin_hash is None or not pin:
        return False
    try:
        return hasher.verify(user.tablet_pin_hash, pin[:PIN_MAX + 1])
    except (VerificationError, InvalidHashError):
        return False


def lock_screen(status: int = 423, *, errors: dict | None = None, next_url: str = ""):
    return render_template("auth/tablet_locked.html", errors=errors or {}, next=next_url), status


def enforce():
    """From the access check, for a signed-in user: the lock screen instead of any page the
    locked tablet may not show (the refusal is audited)."""
    patient_id = locked_patient()
    if patient_id is None:
        return None
    view = current_app.view_functions[request.endpoint]
    if getattr(view, "glia_while_locked", False):
        return None
    if getattr(view, "glia_tablet", False) and (request.view_args or {}).get("patient_id") == patient_id:
        return None
    audit.record_denied("tablet.page_refused", object_type="endpoint", object_id=request.endpoint)
    return lock_screen(next_url=request.full_path.rstrip("?") if request.method == "GET" else "")
