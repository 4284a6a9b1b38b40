"""Sign in, sign out, switch clinic, change password."""
from __future__ import annotations

import logging
import time
from datetime import timedelta

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user
from sqlmodel import select
from wtforms.validators import StopValidation

from core import audit, mfa
from core.form_fields import CheckField, GliaForm, Posted, SecretField
from core.auth import (LOCK_AFTER, LOCK_MINUTES, check_password, clinics_of, end_other_sessions, end_session,
                       hash_password, hasher, home_url, last_used_clinic, note_clinic_used, password_problem,
                       public, safe_next, signed_in, staff, start_session, while_enrolling)
from core.db import get_session
from core.models import STAFF_ROLES, User, utcnow
from core.web import limiter

bp = Blueprint("auth", __name__)
GENERIC_FAILURE = "That email and password do not match an active account."
PENDING_SECONDS = 300  # from the password to the code
KEY_MISMATCH = ("This server cannot check authenticator codes right now (its key for them has changed). "
                "Sign in with one of your recovery codes, or ask an administrator.")
log = logging.getLogger("glia.auth")


class LoginForm(GliaForm):
    email = Posted("Email", max_len=254)
    password = SecretField("Password")
    next = Posted(max_len=2000)  # where to go after; safe_next keeps it on this site


class CodeForm(GliaForm):
    """A code from the authenticator app (or a recovery code)."""

    code = Posted("Code", max_len=64)

    def validate_code(self, field):
        if not field.data:
            raise StopValidation("Enter the code.")


class PasswordForm(GliaForm):
    password = SecretField("Your password")
    next = Posted(max_len=2000)

    def validate_password(self, field):
        if not field.data:
            raise StopValidation("Enter your password.")


class ChangePasswordForm(GliaForm):
    current = SecretField("Current password")
    new = SecretField("New password")
    confirm = SecretField("New password again")


class SwitchClinicForm(GliaForm):
    clinic_id = Posted("Clinic", max_len=12)


class ClinicMfaForm(GliaForm):
    all_staff = CheckField("Require a second sign-in step for all staff of this clinic")


def _login_rate():
    from flask import current_app

    return current_app.config["GLIA_LOGIN_RATE"]


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(_login_rate, methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(home_url(current_user))
    if request.method == "GET":
        return render_template("auth/login.html", next=request.args.get("next", ""))
    db = get_session()
    form = LoginForm()
    email, password = form.email.data.lower(), form.password.data[:1024]
    user = db.exec(select(User).where(User.email == email)).first() if email else None
    locked = _locked(user)
    ok = check_password(user, password) and not locked and user.active
    if not ok:
        _count_failure(db, user, locked, "auth.login_failed")
        return render_template("auth/login.html", error=GENERIC_FAILURE, next=form.next.data), 401
    if hasher.check_needs_rehash(user.password_hash):  # hashing parameters were raised since
        user.password_hash = hash_password(password)
        db.add(user)
    clinics = clinics_of(user)
    if user.role in STAFF_ROLES and not clinics:
        return render_template("auth/login.html", error="Your account is not linked to a clinic yet."), 403
    if user.mfa_enabled_at is not None:
        # half signed in: the cookie names who passed the password, but no session exists, so
        # every page but the code step is refused as for anyone signed out
        session.clear()
        session["mfa_pending"] = {"uid": user.id, "at": int(time.time()), "next": form.next.data}
        return redirect(url_for("auth.login_code"))
    return _signed_in(user, clinics, form.next.data)


@bp.route("/login/code", methods=["GET", "POST"])
@public
@limiter.limit(_login_rate, methods=["POST"])
def login_code():
    """The second step: a code from the authenticator app, or one of the recovery codes."""
    db = get_session()
    pending = session.get("mfa_pending") or {}
    user = db.get(User, pending["uid"]) if pending.get("uid") else None
    if user is None or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        session.pop("mfa_pending", None)
        flash("Sign in again: the step for your code has expired.")
        return redirect(url_for("auth.login"))
    if request.method == "GET":
        return render_template("auth/login_code.html")
    locked = _locked(user)
    try:
        kind = mfa.verify(db, user, CodeForm().code.data) if user.active and not locked else None
    except mfa.MfaKeyError:  # fail closed: no sign-in with an authenticator code this server cannot check
        log.error("mfa: a sealed TOTP secret does not open under this server's key (GLIA_MFA_KEY or GLIA_SECRET_KEY changed?)")
        audit.append(db, "auth.mfa_key_mismatch", object_type="user", object_id=user.id, outcome="denied")
        db.commit()
        return render_template("auth/login_code.html", error=KEY_MISMATCH), 401
    if kind is None:
        if _count_failure(db, user, locked, "auth.mfa_failed"):
            session.pop("mfa_pending", None)
        return render_template("auth/login_code.html", error="That code is not right, or was used already."), 401
    clinics = clinics_of(user)
    if not clinics:  # the membership was removed between the two steps
        return render_template("auth/login.html", error="Your account is not linked to a clinic yet."), 403
    notice = (f"You signed in with a recovery code, which cannot be used again; "
              f"{mfa.recovery_codes_left(db, user)} are left.") if kind == "recovery" else ""
    return _signed_in(user, clinics, pending.get("next"), detail=f"second factor: {kind}", notice=notice)


def _locked(user: User | None) -> bool:
    return user is not None and user.locked_until is not None and user.locked_until > utcnow()


def _count_failure(db, user: User | None, locked: bool, action: str, detail: str = "") -> bool:
    """Count a failed password or code towards the lockout (committed despite the 401); True if it locked."""
    locks = False
    if user is not None and not locked:
        user.failed_logins += 1
        if user.failed_logins >= LOCK_AFTER:
            user.locked_until = utcnow() + timedelta(minutes=LOCK_MINUTES)
            user.failed_logins = 0
            locks = True
        db.add(user)
    audit.append(db, action, object_type="user", object_id=user.id if user else "", outcome="denied", detail=detail)
    db.commit()
    return locks


def _signed_in(user: User, clinics, next_url: str | None, detail: str = "", notice: str = ""):
    """Both steps passed: a fresh session, then the page asked for (or the enrolment a role requires)."""
    user.failed_logins = 0
    user.pin_failures = 0  # the password was given: a PIN switched off by wrong tries works again
    user.locked_until = None
    get_session().add(user)
    clinic = last_used_clinic(user, clinics)
    start_session(user, clinic.id if clinic else None)  # clears the cookie, the pending step too
    if notice:
        flash(notice)
    audit.record("auth.login", object_type="user", object_id=user.id, detail=detail)
    if mfa.enrolment_due(user, g.clinic):
        return redirect(url_for("auth.mfa"))  # the page says why
    return redirect(safe_next(next_url, home_url(user)))


@bp.route("/logout", methods=["POST"])
@public
def logout():
    if current_user.is_authenticated:
        audit.record("auth.logout", object_type="user", object_id=current_user.id)
        end_session()
    flash("You have signed out.")
    return redirect(url_for("auth.login"))


@bp.route("/switch-clinic", methods=["POST"])
@staff()
def switch_clinic():
    wanted = SwitchClinicForm().clinic_id.number()
    if wanted not in {c.id for c in clinics_of(current_user)}:
        abort(404)
    g.user_session.clinic_id = wanted
    get_session().add(g.user_session)
    note_clinic_used(current_user, wanted)
    audit.record("auth.switch_clinic", object_type="clinic", object_id=wanted, clinic_id=wanted)
    return redirect(url_for("dashboard.index"))


@bp.route("/account/password", methods=["GET", "POST"])
@signed_in
@limiter.limit(_login_rate, methods=["POST"])
def change_password():
    """A new password ends every other session of the account (a thief's copied cookie too)."""
    if request.method == "GET":
        return render_template("auth/password.html", errors={})
    db = get_session()
    user = db.get(User, current_user.id)
    form = ChangePasswordForm()
    if not check_password(user, form.current.data[:1024]):
        audit.record_denied("auth.password_change_failed", object_type="user", object_id=user.id)
        return render_template("auth/password.html", errors={"current": "Your current password is not right."}), 422
    new = form.new.data
    errors = {}
    if problem := password_problem(new, email=user.email, name=user.name):
        errors["new"] = problem
    elif new != form.confirm.data:
        errors["confirm"] = "The two new passwords differ."
    if errors:
        return render_template("auth/password.html", errors=errors), 422
    user.password_hash = hash_password(new)
    db.add(user)
    ended = end_other_sessions(user, keep=g.user_session.id)
    audit.record("auth.password_changed", object_type="user", object_id=user.id, detail=f"ended {ended} other sessions")
    flash("Password changed." + (f" Signed out {ended} other session(s)." if ended else ""))
    return redirect(home_url(user))


# -- the second factor -------------------------------------------------------------------

def _mfa_page(status: int = 200, **ctx):
    db = get_session()
    user = db.get(User, current_user.id)
    return render_template("auth/mfa.html", user=user, required=mfa.required(user, g.clinic),
                           codes_left=mfa.recovery_codes_left(db, user), errors=ctx.pop("errors", {}), **ctx), status


@bp.route("/account/mfa", endpoint="mfa")
@staff()
@while_enrolling
def mfa_status():
    return _mfa_page()


@bp.route("/account/mfa/start", methods=["POST"])
@staff()
@while_enrolling
def mfa_start():
    """A new secret to scan; an enrolled factor keeps working until the new one is confirmed."""
    db = get_session()
    user = db.get(User, current_user.id)
    mfa.start_enrolment(db, user)
    audit.record("auth.mfa_enrolment_started", object_type="user", object_id=user.id)
    return redirect(url_for("auth.mfa_setup"))


@bp.route("/account/mfa/setup", methods=["GET", "POST"])
@staff()
@while_enrolling
@limiter.limit(_login_rate, methods=["POST"])
def mfa_setup():
    db = get_session()
    user = db.get(User, current_user.id)
    factor = mfa.pending_factor(db, user)
    if factor is None:
        flash("Start the set-up again: the code to scan has expired.")
        return redirect(url_for("auth.mfa"))
    form = CodeForm()
    uri = mfa.provisioning_uri(factor, user)
    secret = mfa.unseal(factor)
    grouped = " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))  # typed by hand
    page = {"qr": mfa.qr_data_uri(uri), "secret": grouped, "errors": {}}
    if request.method == "GET":
        return render_template("auth/mfa_setup.html", **page)
    codes = mfa.confirm_enrolment(db, user, factor, form.code.data or "") if form.validate() else None
    if codes is None:
        page["errors"] = form.messages or {"code": "That code does not match. Check the time on your phone and "
                                                   "enter the code the app shows now."}
        return render_template("auth/mfa_setup.html", **page), 422
    audit.record("auth.mfa_enrolled", object_type="user", object_id=user.id)
    return render_template("auth/mfa_codes.html", codes=codes)


@bp.route("/account/mfa/recovery-codes", methods=["POST"])
@staff()
@limiter.limit(_login_rate)
def mfa_new_codes():
    """Ten new recovery codes replace the old ones (all of them), after the password."""
    db = get_session()
    user = db.get(User, current_user.id)
    form = PasswordForm()
    if user.mfa_enabled_at is None:
        abort(409)
    if not (form.validate() and check_password(user, form.password.data)):
        audit.record_denied("auth.mfa_codes_failed", object_type="user", object_id=user.id)
        return _mfa_page(422, errors={"password": "Your password is not right."})
    codes = mfa.issue_recovery_codes(db, user)
    audit.record("auth.mfa_codes_renewed", object_type="user", object_id=user.id)
    return render_template("auth/mfa_codes.html", codes=codes)


@bp.route("/account/mfa/disable", methods=["POST"])
@staff()
@limiter.limit(_login_rate)
def mfa_disable():
    db = get_session()
    user = db.get(User, current_user.id)
    form = PasswordForm()
    if mfa.required(user, g.clinic):
        return _mfa_page(422, errors={"password": "Your role or clinic requires a second step: set up a new "
                                                  "authenticator instead of switching it off."})
    if not (form.validate() and check_password(user, form.password.data)):
        audit.record_denied("auth.mfa_disable_failed", object_type="user", object_id=user.id)
        return _mfa_page(422, errors={"password": "Your password is not right."})
    mfa.remove(db, user)
    audit.record("auth.mfa_disabled", object_type="user", object_id=user.id)
    flash("The second sign-in step is off; your recovery codes no longer work.")
    return redirect(url_for("auth.mfa"))


@bp.route("/settings/security", methods=["GET", "POST"])
@staff("admin", "manager")
def clinic_mfa():
    """The clinic's choice: a second factor for admins and managers only, or for all its staff."""
    clinic = g.clinic
    form = ClinicMfaForm(data={"all_staff": clinic.mfa_all_staff} if request.method == "GET" else None)
    if request.method == "POST" and form.validate():
        clinic.mfa_all_staff = bool(form.all_staff.data)
        get_session().add(clinic)
        audit.record("clinic.mfa_setting", object_type="clinic", object_id=clinic.id,
                     detail="all staff" if clinic.mfa_all_staff else "admins and managers")
        flash("Saved: a second sign-in step is required for "
              + ("all staff." if clinic.mfa_all_staff else "admins and managers."))
        return redirect(url_for("auth.clinic_mfa"))
    return render_template("auth/clinic_mfa.html", form=form, clinic=clinic, roles=mfa.required_roles())


from core.views import tablet_unlock  # noqa: E402,F401 - the tablet's routes, on this blueprint
