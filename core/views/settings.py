"""Clinic settings, providers, users and roles, outside clinicians.

The clinic's own details are what superbills and letters print (EIN, type-2 NPI, place of
service, address), so they are validated as strictly as the documents need them.
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from sqlmodel import select

from core import audit
from core.auth import end_other_sessions, hash_password, password_problem, staff
from core.db import get_session
from core.clock import common_timezones
from core.models import ClinicianKind, Membership, OutsideClinician, Provider, Role, User, utcnow
from core.views.settings_forms import (CLINICIAN_KINDS, PLACES_OF_SERVICE, STAFF_ROLE_NAMES, ClinicForm, ClinicianForm,
                                      ProviderForm, UserForm, UserUpdateForm)

bp = Blueprint("settings", __name__, url_prefix="/settings")
MANAGERS = ("admin", "manager")


def _page(template: str, status: int = 200, **ctx):
    return render_template(f"settings/{template}", errors=ctx.pop("errors", {}), values=ctx.pop("values", {}),
                           **ctx), status


# -- clinic -------------------------------------------------------------------------------

@bp.route("/clinic", methods=["GET", "POST"])
@staff(*MANAGERS)
def clinic():
    c = g.clinic
    fields = ("name", "address_line1", "address_line2", "city", "state", "postal_code", "phone", "fax", "timezone",
              "ein", "npi", "place_of_service", "rems_setting_id")
    if request.method == "GET":
        return _page("clinic.html", values={f: getattr(c, f) for f in fields}, zones=[(z, z) for z in common_timezones()],
                     places=PLACES_OF_SERVICE)
    form = ClinicForm()
    if not form.validate():
        return _page("clinic.html", 422, values=form.values, errors=form.messages, zones=[(z, z) for z in common_timezones()],
                     places=PLACES_OF_SERVICE)
    form.apply(c, fields)
    get_session().add(c)
    audit.record("clinic.update", object_type="clinic", object_id=c.id)
    flash("Clinic settings saved.")
    return redirect(url_for("settings.clinic"))


# -- providers ----------------------------------------------------------------------------

def _get_provider(provider_id: int) -> Provider:
    p = get_session().exec(select(Provider).where(Provider.id == provider_id, Provider.clinic_id == g.clinic.id)).first()
    if p is None:
        audit.record_denied("provider.access", object_type="provider", object_id=provider_id)
        abort(404)
    return p


def _providers():
    return get_session().exec(select(Provider).where(Provider.clinic_id == g.clinic.id)
                              .order_by(Provider.active.desc(), Provider.last_name)).all()


@bp.route("/providers", methods=["GET", "POST"])
@staff(*MANAGERS)
def providers():
    if request.method == "GET":
        return _page("providers.html", providers=_providers(), values={"active": True})
    form = ProviderForm()
    if not form.validate():
        return _page("providers.html", 422, providers=_providers(), values=form.values, errors=form.messages)
    p = Provider(clinic_id=g.clinic.id, first_name="", last_name="", npi="", active=True)
    form.apply(p, ("first_name", "last_name", "credentials", "npi", "license_number", "license_state"))
    db = get_session()
    db.add(p)
    db.flush()
    audit.record("provider.create", object_type="provider", object_id=p.id)
    flash(f"{p.display_name} added.")
    return redirect(url_for("settings.providers"))


@bp.route("/providers/<int:provider_id>", methods=["GET", "POST"])
@staff(*MANAGERS)
def edit_provider(provider_id: int):
    p = _get_provider(provider_id)
    keys = ("first_name", "last_name", "credentials", "npi", "license_number", "license_state", "active")
    if request.method == "GET":
        return _page("provider.html", provider=p, values={k: getattr(p, k) for k in keys})
    form = ProviderForm()
    if not form.validate():
        return _page("provider.html", 422, provider=p, values=form.values, errors=form.messages)
    form.apply(p, keys)
    get_session().add(p)
    audit.record("provider.update", object_type="provider", object_id=p.id)
    flash("Provider saved.")
    return redirect(url_for("settings.providers"))


# -- users and roles ----------------------------------------------------------------------

ROLE_OPTIONS = [(r, r.replace("_", " ").capitalize()) for r in STAFF_ROLE_NAMES]


def _users():
    return get_session().exec(select(User).join(Membership, Membership.user_id == User.id)
                              .where(Membership.clinic_id == g.clinic.id)
                              .order_by(User.active.desc(), User.name)).all()


@bp.route("/users", methods=["GET", "POST"])
@staff("admin")
def users():
    if request.method == "GET":
        return _page("users.html", users=_users(), roles=STAFF_ROLE_NAMES, role_options=ROLE_OPTIONS, values={"role": "front_desk"})
    db = get_session()
    form = UserForm()
    form.validate()
    email, role, password = (form.email.data or "").lower(), form.role.data, form.password.data
    if not form.password.errors and (problem := password_problem(password, email=email)):
        form.refuse("password", problem)
    if email and not form.email.errors and db.exec(select(User.id).where(User.email == email)).first():
        form.refuse("email", "An account with that email already exists.")
    if form.messages:
        return _page("users.html", 422, users=_users(), roles=STAFF_ROLE_NAMES, role_options=ROLE_OPTIONS, values=form.values, errors=form.messages)
    user = User(email=email, name=form.name.data, role=Role(role), password_hash=hash_password(password),
                created_at=utcnow())
    db.add(user)
    db.flush()
    db.add(Membership(user_id=user.id, clinic_id=g.clinic.id))
    audit.record("user.create", object_type="user", object_id=user.id, detail=f"role {role}")
    flash(f"Account for {user.name} created. Share the temporary password in person.")
    return redirect(url_for("settings.users"))


@bp.post("/users/<int:user_id>")
@staff("admin")
def update_user(user_id: int):
    """Change a role or deactivate; deactivating ends every session of that user at once."""
    db = get_session()
    user = db.exec(select(User).join(Membership, Membership.user_id == User.id)
                   .where(User.id == user_id, Membership.clinic_id == g.clinic.id)).first()
    if user is None or user.role == Role.patient:
        audit.record_denied("user.access", object_type="user", object_id=user_id)
        abort(404)
    form = UserUpdateForm()
    role = form.role.data if form.role.posted else user.role.value
    active = form.active.data
    if role not in STAFF_ROLE_NAMES:
        return _page("users.html", 422, users=_users(), roles=STAFF_ROLE_NAMES, role_options=ROLE_OPTIONS, values={"role": "front_desk"},
                     errors={f"user_{user.id}": "Choose one of the staff roles."})
    if user.id == current_user.id and (role != user.role.value or not active):
        return _page("users.html", 422, users=_users(), roles=STAFF_ROLE_NAMES, role_options=ROLE_OPTIONS, values={"role": "front_desk"},
                     errors={f"user_{user.id}": "You cannot change your own role or deactivate yourself; ask another admin."})
    changes = []
    if role != user.role.value:
        changes.append(f"role {user.role.value} -> {role}")
        user.role = Role(role)
    if active != user.active:
        user.active = active
        changes.append("activated" if active else "deactivated")
        if not active:
            ended = end_other_sessions(user)
            changes.append(f"ended {ended} session(s)")
    if changes:
        db.add(user)
        audit.record("user.update", object_type="user", object_id=user.id, detail="; ".join(changes))
        flash(f"{user.name}: {', '.join(changes)}.")
    return redirect(url_for("settings.users"))


# -- outside clinicians -------------------------------------------------------------------

def _clinicians():
    return get_session().exec(select(OutsideClinician).where(OutsideClinician.clinic_id == g.clinic.id)
                              .order_by(OutsideClinician.name)).all()


@bp.route("/clinicians", methods=["GET", "POST"])
@staff("admin", "manager", "clinician")
def clinicians():
    if request.method == "GET":
        return _page("clinicians.html", clinicians=_clinicians(), kinds=CLINICIAN_KINDS, values={})
    form = ClinicianForm()
    if not form.validate():
        return _page("clinicians.html", 422, clinicians=_clinicians(), kinds=CLINICIAN_KINDS, values=form.values,
                     errors=form.messages)
    c = OutsideClinician(clinic_id=g.clinic.id, kind=ClinicianKind(form.kind.data), name="")
    form.apply(c, ("name", "credentials", "practice", "npi", "phone", "fax", "email", "address"))
    db = get_session()
    db.add(c)
    db.flush()
    audit.record("outside_clinician.create", object_type="outside_clinician", object_id=c.id)
    flash(f"{c.name} added.")
    return redirect(url_for("settings.clinicians"))


@bp.route("/clinicians/<int:clinician_id>", methods=["GET", "POST"])
@staff("admin", "manager", "clinician")
def edit_clinician(clinician_id: int):
    c = get_session().exec(select(OutsideClinician).where(OutsideClinician.id == clinician_id,
                                                          OutsideClinician.clinic_id == g.clinic.id)).first()
    if c is None:
        audit.record_denied("outside_clinician.access", object_type="outside_clinician", object_id=clinician_id)
        abort(404)
    keys = ("kind", "name", "credentials", "practice", "npi", "phone", "fax", "email", "address")
    if request.method == "GET":
        return _page("clinician.html", clinician=c, kinds=CLINICIAN_KINDS,
                     values={k: getattr(getattr(c, k), "value", getattr(c, k)) for k in keys})
    form = ClinicianForm()
    if not form.validate():
        return _page("clinician.html", 422, clinician=c, kinds=CLINICIAN_KINDS, values=form.values, errors=form.messages)
    form.apply(c, keys[1:])
    c.kind = ClinicianKind(form.kind.data)
    get_session().add(c)
    audit.record("outside_clinician.update", object_type="outside_clinician", object_id=c.id)
    flash("Outside clinician saved.")
    return redirect(url_for("settings.clinicians"))
