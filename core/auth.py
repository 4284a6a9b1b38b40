"""Login, roles and server-side sessions.

Every route declares who may use it (``public``, ``staff(...)``, ``patient_only``); one
before-request check enforces it, so an undeclared route is refused rather than left open.
Sessions live in the user_session table: logout, deactivation, password change and the idle
and absolute timeouts end them on the server, so a copied cookie stops working.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import abort, current_app, g, redirect, request, session, url_for
from flask_login import LoginManager, current_user, login_user, logout_user
from sqlalchemy import func, update
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import select
from zxcvbn import zxcvbn

from core import mfa, tablet
from core.db import get_session, later
from core.models import STAFF_ROLES, Clinic, Membership, Patient, Role, User, UserSession, utcnow

hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
_DUMMY_HASH = hasher.hash("not a real password, used to even out timing")
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please sign in to continue."
login_manager.session_protection = None  # our server-side session table does this job

LOCK_AFTER = 5
LOCK_MINUTES = 15
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
MIN_STRENGTH = 3  # zxcvbn score 0-4: 3 is "safely unguessable" against online and throttled offline attack


# -- route declarations -------------------------------------------------------------------

@dataclass(frozen=True)
class Access:
    kind: str  # public, staff, patient
    roles: tuple[str, ...] = ()


def public(view):
    """Anyone, signed in or not."""
    view.glia_access = Access("public")
    return view


def staff(*roles: Role | str):
    """Signed-in staff; with ``roles``, only those roles."""
    names = tuple(r.value if isinstance(r, Role) else r for r in roles) or tuple(r.value for r in STAFF_ROLES)

    def mark(view):
        view.glia_access = Access("staff", names)
        return view

    return mark


def signed_in(view):
    """Any signed-in user, staff or patient (their own account pages)."""
    view.glia_access = Access("user", tuple(r.value for r in Role))
    return view


def patient_only(view):
    """A signed-in patient, who then sees only their own records."""
    view.glia_access = Access("patient", ("patient",))
    return view


def while_enrolling(view):
    """A page a user who must enrol in a second factor may still use (the enrolment itself)."""
    view.glia_while_enrolling = True
    return view


def access_of(view) -> Access | None:
    return getattr(view, "glia_access", None)


def enforce_access() -> None:
    """before_request: default deny."""
    if request.endpoint is None:
        return  # no route matched: a 404 follows
    if request.endpoint == "static":
        return
    view = current_app.view_functions[request.endpoint]
    declared = access_of(view)
    if declared is None:
        current_app.logger.error("route %s has no access declaration; refused", request.endpoint)
        abort(403)
    if declared.kind == "public":
        return
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    if not getattr(view, "glia_while_enrolling", False) and mfa.enrolment_due(current_user, g.get("clinic")):
        return redirect(url_for("auth.mfa"))  # a required second factor comes before any page
    locked = tablet.enforce()  # a device handed to a patient shows nothing else until unlocked
    if locked is not None:
        return locked
    if current_user.role.value not in declared.roles:
        from core import audit

        audit.record_denied("access.denied", object_type="endpoint", object_id=request.endpoint)
        abort(403)
    if declared.kind == "staff" and g.get("clinic") is None:
        abort(403)


# -- passwords ---------------------------------------------------------------------------

def hash_password(password: str) -> str:
    return hasher.hash(password)


def check_password(user: User | None, password: str) -> bool:
    """Verify; for an unknown user, spend the same time on a dummy hash."""
    try:
        return hasher.verify(user.password_hash if user else _DUMMY_HASH, password) and user is not None
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password: str, *, email: str = "", name: str = "") -> str | None:
    """Length, then strength as zxcvbn estimates it (common words, patterns, dates, the user's
    own email and name); a short list of common passwords misses most of what attackers try."""
    if len(password) < MIN_PASSWORD:
        return f"Use at least {MIN_PASSWORD} characters."
    if len(password) > MAX_PASSWORD:
        return f"Use at most {MAX_PASSWORD} characters."
    local = email.split("@")[0].lower()
    if local and local in password.lower():
        return "Do not include your email name in the password."
    # zxcvbn refuses more than 72 characters (its cost grows with length); the rest only adds strength
    verdict = zxcvbn(password[:72], user_inputs=[w for w in (local, *name.lower().split()) if w])
    if verdict["score"] < MIN_STRENGTH:
        hint = verdict["feedback"]["warning"] or "It follows a pattern that is easy to guess."
        return f"That password is too easy to guess: {hint.rstrip('.')}. Add a few uncommon words."
    return None


# -- sessions ----------------------------------------------------------------------------

@login_manager.user_loader
def _load_user(user_id: str):
    sid = session.get("sid")
    if not sid:
        return None
    db = get_session()
    # one query for the session, its user, the membership it relies on, its clinic and how many
    # clinics the user belongs to (one: the clinic switcher needs no query of its own)
    other = aliased(Membership)
    memberships = select(func.count()).select_from(other).where(other.user_id == UserSession.user_id).scalar_subquery()
    found = db.exec(
        select(UserSession, User, Membership.user_id, Clinic, memberships)
        .join(User, User.id == UserSession.user_id)
        .outerjoin(Membership, (Membership.user_id == UserSession.user_id) & (Membership.clinic_id == UserSession.clinic_id))
        .outerjoin(Clinic, Clinic.id == UserSession.clinic_id)
        .where(UserSession.id == sid)).first()
    if found is None:
        return None
    us, user, member, clinic, clinic_count = found
    now = utcnow()
    cfg = current_app.config
    if us.ended_at is not None or str(us.user_id) != user_id:
        return None
    idle = timedelta(minutes=cfg["GLIA_IDLE_MINUTES"])
    absolute = timedelta(hours=cfg["GLIA_ABSOLUTE_HOURS"])
    if now - us.last_seen_at > idle or now - us.created_at > absolute:
        _touch(us, ended_at=now)
        return None
    revoked = user.is_staff and us.clinic_id is not None and member is None
    if not user.active or revoked:
        _touch(us, ended_at=now)
        return None
    if now - us.last_seen_at > timedelta(seconds=30):
        _touch(us, last_seen_at=now)
    g.user_session = us
    if clinic is not None:
        g.clinic = clinic
        if member is not None and clinic_count == 1:
            g.only_clinic = (user.id, clinic)
    return user


def _touch(us: UserSession, **values) -> None:
    """Update the sign-in session row; a read-only request writes it as it finishes."""
    sid = us.id  # read now: the read-only transaction has ended when the queued write runs
    for name, value in values.items():
        set_committed_value(us, name, value)
    later(lambda s: s.exec(update(UserSession).where(UserSession.id == sid).values(**values)))


def start_session(user: User, clinic_id: int | None) -> UserSession:
    """Fresh cookie contents and a new server-side session (no fixation)."""
    session.clear()
    db = get_session()
    now = utcnow()
    us = UserSession(id=secrets.token_urlsafe(32), user_id=user.id, clinic_id=clinic_id,
                     created_at=now, last_seen_at=now, ip=request.remote_addr or "")
    db.add(us)
    db.flush()
    session["sid"] = us.id
    session.permanent = True
    login_user(user)
    g.user_session = us
    g.clinic = db.get(Clinic, clinic_id) if clinic_id else None
    return us


def end_session() -> None:
    us = g.get("user_session")
    if us is not None:
        us.ended_at = utcnow()
        get_session().add(us)
    logout_user()
    session.clear()


def end_other_sessions(user: User, keep: str | None = None) -> int:
    db = get_session()
    rows = db.exec(select(UserSession).where(UserSession.user_id == user.id,
                                             UserSession.ended_at.is_(None))).all()
    n = 0
    for us in rows:
        if us.id != keep:
            us.ended_at = utcnow()
            db.add(us)
            n += 1
    return n


def clinics_of(user: User) -> list[Clinic]:
    only = g.get("only_clinic")
    if only is not None and only[0] == user.id:
        return [only[1]]  # known from the session's query: a member of this clinic and no other
    db = get_session()
    if user.role == Role.patient:
        return list(db.exec(select(Clinic).join(Patient, Patient.clinic_id == Clinic.id)
                            .where(Patient.user_id == user.id)).all())
    return list(db.exec(select(Clinic).join(Membership, Membership.clinic_id == Clinic.id)
                        .where(Membership.user_id == user.id).order_by(Clinic.name)).all())


def last_used_clinic(user: User, clinics: list[Clinic]) -> Clinic | None:
    """The clinic to open at sign-in: the one this user last switched to, else the first by name."""
    if len(clinics) < 2:
        return clinics[0] if clinics else None
    last = get_session().exec(select(Membership.clinic_id).where(
        Membership.user_id == user.id, Membership.last_used_at.is_not(None))
        .order_by(Membership.last_used_at.desc()).limit(1)).first()
    return next((c for c in clinics if c.id == last), clinics[0])


def note_clinic_used(user: User, clinic_id: int) -> None:
    get_session().exec(update(Membership).where(Membership.user_id == user.id, Membership.clinic_id == clinic_id)
                       .values(last_used_at=utcnow()))


def current_patient() -> Patient:
    """The signed-in patient's own record in the current clinic, or 404."""
    clinic = g.get("clinic")
    patient = get_session().exec(select(Patient).where(
        Patient.user_id == current_user.id, Patient.clinic_id == (clinic.id if clinic else -1))).first()
    if patient is None:
        abort(404)
    return patient


def clinic_row_or_404(model, object_id: int, *, object_type: str, action: str, **match):
    """A row of the current clinic by id (and any extra column matches), or 404.

    A miss is audited as a denied access, and looks the same whether the row is another
    clinic's or does not exist, so ids cannot be probed.
    """
    row = get_session().exec(select(model).where(
        model.id == object_id, model.clinic_id == g.clinic.id,
        *[getattr(model, column) == value for column, value in match.items()])).first()
    if row is None:
        from core import audit

        audit.record_denied(action, object_type=object_type, object_id=object_id)
        abort(404)
    return row


def safe_next(target: str | None, default: str) -> str:
    """Only same-site relative paths; anything else goes to ``default``."""
    if not target:
        return default
    # browsers drop tabs and newlines and read a backslash as "/": such targets could leave the site
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def home_url(user: User) -> str:
    return url_for("portal.home") if user.role == Role.patient else url_for("dashboard.index")
