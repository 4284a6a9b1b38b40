"""Sign in, sign out, switch clinic, change password."""
from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlmodel import select

from core import audit
from core.auth import (LOCK_AFTER, LOCK_MINUTES, check_password, clinics_of, end_other_sessions,
                       end_session, hash_password, hasher, home_url, password_problem, public, safe_next,
                       signed_in, staff, start_session)
from core.db import get_session
from core.models import STAFF_ROLES, Role, User, utcnow
from core.web import limiter

bp = Blueprint("auth", __name__)
GENERIC_FAILURE = "That email and password do not match an active account."


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
    email = request.form.get("email", "").strip().lower()[:254]
    password = request.form.get("password", "")[:1024]
    user = db.exec(select(User).where(User.email == email)).first() if email else None
    now = utcnow()
    locked = user is not None and user.locked_until is not None and user.locked_until > now
    ok = check_password(user, password) and not locked and user.active
    if not ok:
        if user is not None and not locked:
            user.failed_logins += 1
            if user.failed_logins >= LOCK_AFTER:
                user.locked_until = now + timedelta(minutes=LOCK_MINUTES)
                user.failed_logins = 0
            db.add(user)
        audit.append(db, "auth.login_failed", object_type="user",
                     object_id=user.id if user else "", outcome="denied")
        db.commit()  # the failure counts even though we answer 401
        return render_template("auth/login.html", error=GENERIC_FAILURE,
                               next=request.form.get("next", "")), 401
    user.failed_logins = 0
    user.locked_until = None
    if hasher.check_needs_rehash(user.password_hash):  # hashing parameters were raised since
        user.password_hash = hash_password(password)
    db.add(user)
    clinics = clinics_of(user)
    if user.role in STAFF_ROLES and not clinics:
        return render_template("auth/login.html", error="Your account is not linked to a clinic yet."), 403
    start_session(user, clinics[0].id if clinics else None)
    audit.record("auth.login", object_type="user", object_id=user.id)
    return redirect(safe_next(request.form.get("next"), home_url(user)))


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
    from flask import g

    wanted = request.form.get("clinic_id", type=int)
    if wanted not in {c.id for c in clinics_of(current_user)}:
        abort(404)
    g.user_session.clinic_id = wanted
    get_session().add(g.user_session)
    audit.record("auth.switch_clinic", object_type="clinic", object_id=wanted, clinic_id=wanted)
    return redirect(url_for("dashboard.index"))


@bp.route("/account/password", methods=["GET", "POST"])
@signed_in
@limiter.limit(_login_rate, methods=["POST"])
def change_password():
    """A new password ends every other session of the account (a thief's copied cookie too)."""
    from flask import g

    if request.method == "GET":
        return render_template("auth/password.html")
    db = get_session()
    user = db.get(User, current_user.id)
    if not check_password(user, request.form.get("current", "")[:1024]):
        audit.record_denied("auth.password_change_failed", object_type="user", object_id=user.id)
        return render_template("auth/password.html", error="Your current password is not right."), 422
    new = request.form.get("new", "")
    problem = password_problem(new, email=user.email)
    if problem is None and new != request.form.get("confirm", ""):
        problem = "The two new passwords differ."
    if problem:
        return render_template("auth/password.html", error=problem), 422
    user.password_hash = hash_password(new)
    db.add(user)
    ended = end_other_sessions(user, keep=g.user_session.id)
    audit.record("auth.password_changed", object_type="user", object_id=user.id, detail=f"ended {ended} other sessions")
    flash("Password changed." + (f" Signed out {ended} other session(s)." if ended else ""))
    return redirect(home_url(user))
