"""The tablet's way back to staff (password or PIN), and the page where staff set their PIN.

Routes of the ``auth`` blueprint, kept here so core.views.auth stays about signing in.
"""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from core import audit, tablet
from core.auth import check_password, end_session, hash_password, safe_next, staff
from core.db import get_session
from core.form_fields import GliaForm, Posted, SecretField
from core.models import User
from core.tablet import PIN_TRIES, lock_screen, locked_patient, while_locked
from core.views.auth import _count_failure, _locked, _login_rate, bp
from core.web import limiter


class UnlockForm(GliaForm):
    """One of the two is posted: the lock screen has a form for each."""

    pin = SecretField("Your tablet PIN", max_len=64)
    password = SecretField("Your password")
    next = Posted(max_len=2000)


class PinForm(GliaForm):
    current = SecretField("Your password")
    pin = SecretField("New PIN", max_len=64)
    confirm = SecretField("New PIN again", max_len=64)


class RemovePinForm(GliaForm):
    password = SecretField("Your password")


@bp.route("/tablet/unlock", methods=["POST"])
@staff()
@while_locked
@limiter.limit(_login_rate)
def tablet_unlock():
    """The tablet comes back: the signed-in staff member's password or PIN lifts the lock. Wrong
    ones count towards the account's lockout as at sign-in (when it locks, the session ends);
    PIN_TRIES wrong PINs in a row switch the PIN off until the password is used."""
    db = get_session()
    user = db.get(User, current_user.id)
    form = UnlockForm()
    next_url = safe_next(form.next.data, url_for("dashboard.index"))
    if locked_patient() is None:
        return redirect(next_url)
    with_pin = bool(form.pin.data) and not form.password.data
    if with_pin and not tablet.pin_usable(user):
        why = "The PIN is switched off" if user.tablet_pin_hash else "You have not set a tablet PIN"
        return _refused(form, {"password": f"{why}: unlock with your password."})
    if not (form.pin.data or form.password.data):
        return _refused(form, {"password": "Enter your PIN or your password."})
    locked = _locked(user)
    right = tablet.check_pin(user, form.pin.data) if with_pin else check_password(user, form.password.data)
    if locked or not right:
        if with_pin and not locked:
            user.pin_failures += 1
        if _count_failure(db, user, locked, "tablet.unlock_failed", detail="with PIN" if with_pin else "with password"):
            end_session()
            flash("Too many wrong tries: you were signed out, and the account is locked for a while.")
            return redirect(url_for("auth.login"))
        if not with_pin:
            return _refused(form, {"password": "That password is not right."})
        if tablet.pin_usable(user):
            return _refused(form, {"pin": "That PIN is not right."})
        return _refused(form, {"password": f"That PIN is not right. After {PIN_TRIES} wrong PINs, "
                                           "unlock with your password."})
    user.failed_logins = 0
    user.pin_failures = 0
    db.add(user)
    tablet.unlock("PIN" if with_pin else "password")
    return redirect(next_url)


def _refused(form: UnlockForm, errors: dict):
    return lock_screen(422, errors=errors, next_url=form.next.data)


@bp.route("/account/tablet-pin", methods=["GET", "POST"])
@staff()
@limiter.limit(_login_rate, methods=["POST"])
def tablet_pin():
    """Set or change the PIN, after the password (a PIN alone must not be able to replace itself)."""
    db = get_session()
    user = db.get(User, current_user.id)
    form = PinForm()
    if request.method == "GET":
        return _pin_page(user)
    if not check_password(user, form.current.data):
        audit.record_denied("auth.tablet_pin_failed", object_type="user", object_id=user.id)
        return _pin_page(user, 422, current="Your password is not right.")
    if problem := tablet.pin_problem(form.pin.data):
        return _pin_page(user, 422, pin=problem)
    if form.pin.data != form.confirm.data:
        return _pin_page(user, 422, confirm="The two PINs differ.")
    changed = user.tablet_pin_hash is not None
    user.tablet_pin_hash = hash_password(form.pin.data)
    user.pin_failures = 0
    db.add(user)
    audit.record("auth.tablet_pin_set", object_type="user", object_id=user.id, detail="changed" if changed else "new")
    flash("Tablet PIN saved: it unlocks a tablet you handed to a patient.")
    return redirect(url_for("auth.tablet_pin"))


@bp.route("/account/tablet-pin/remove", methods=["POST"])
@staff()
@limiter.limit(_login_rate)
def tablet_pin_remove():
    db = get_session()
    user = db.get(User, current_user.id)
    if not check_password(user, RemovePinForm().password.data):
        audit.record_denied("auth.tablet_pin_failed", object_type="user", object_id=user.id)
        return _pin_page(user, 422, password="Your password is not right.")
    user.tablet_pin_hash = None
    user.pin_failures = 0
    db.add(user)
    audit.record("auth.tablet_pin_removed", object_type="user", object_id=user.id)
    flash("Tablet PIN removed: the tablet unlocks with your password only.")
    return redirect(url_for("auth.tablet_pin"))


def _pin_page(user: User, status: int = 200, **errors):
    return render_template("auth/tablet_pin.html", user=user, errors=errors, pin_tries=PIN_TRIES,
                           switched_off=user.tablet_pin_hash is not None and not tablet.pin_usable(user)), status
