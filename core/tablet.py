"""Tablet mode: while a staff member's device is handed to a patient (to sign a consent, say),
only that patient's tablet pages answer; every other page of the app shows the lock screen until
the signed-in staff member unlocks it with their password.

The lock is kept on the server-side sign-in session row, not in the cookie, so no cookie trick
lifts it. Locking only takes access away, so the tablet page's GET may set it; unlocking is a POST
with the password and the CSRF token (core.views.auth.tablet_unlock).
"""
from __future__ import annotations

from flask import current_app, g, render_template, request
from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value

from core import audit
from core.db import later
from core.models import UserSession


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


def unlock() -> None:
    patient_id = locked_patient()
    _set(None)
    audit.record("tablet.unlocked", object_type="patient", object_id=patient_id, patient_id=patient_id)


def lock_screen(status: int = 423, *, error: str = "", next_url: str = ""):
    return render_template("auth/tablet_locked.html", error=error, next=next_url), status


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
