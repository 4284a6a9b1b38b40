"""REMS enrollment ids: the patient's (recorded on the chart) and the rules both ids follow.

Enrollments are append-only: recording again corrects the current row with a written reason,
and the form names the row it corrects, so two people correcting at once cannot both win.
"""
from __future__ import annotations

import re
from datetime import date

from sqlalchemy import func
from sqlmodel import Session, select

from core.forms import Form
from core.models import Patient, User, utcnow
from core.rems.models import RemsEnrollment

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
ID_MAX = 40
REMS_START = date(2019, 3, 1)  # Spravato was approved, with its REMS, in March 2019


class Stale(Exception):
    """The enrollment changed since the form was shown."""


def id_problem(value: str, label: str) -> str | None:
    """REMS ids are letters, digits and hyphens; anything else is a typing or pasting slip."""
    if len(value) > ID_MAX:
        return f"{label}: at most {ID_MAX} characters."
    if value and not ID_PATTERN.fullmatch(value):
        return f"{label}: use letters A-Z, digits and hyphens only, as the REMS issued it."
    return None


def control_problem(value: str, label: str) -> str | None:
    """Control characters (a pasted NUL, an escape) never belong in a record; PostgreSQL refuses NUL outright."""
    if any(ord(c) < 32 and c not in "\n\t" or ord(c) == 127 for c in value):
        return f"{label}: remove the control characters."
    return None


def current_enrollments(session: Session, clinic_id: int, patient_ids) -> dict[int, RemsEnrollment]:
    """The newest enrollment row per patient (one query)."""
    ids = list(patient_ids)
    if not ids:
        return {}
    latest = (select(func.max(RemsEnrollment.id)).where(RemsEnrollment.clinic_id == clinic_id,
                                                        RemsEnrollment.patient_id.in_(ids))
              .group_by(RemsEnrollment.patient_id))
    rows = session.exec(select(RemsEnrollment).where(RemsEnrollment.clinic_id == clinic_id,
                                                     RemsEnrollment.id.in_(latest))).all()
    return {r.patient_id: r for r in rows}


def names_of(session: Session, user_ids) -> dict[int, str]:
    """Staff names for "recorded by" and "submitted by" columns (one query)."""
    ids = {i for i in user_ids if i}
    return dict(session.exec(select(User.id, User.name).where(User.id.in_(ids))).all()) if ids else {}


def history(session: Session, clinic_id: int, patient_id: int) -> list[RemsEnrollment]:
    return list(session.exec(select(RemsEnrollment).where(RemsEnrollment.clinic_id == clinic_id,
                                                          RemsEnrollment.patient_id == patient_id)
                             .order_by(RemsEnrollment.id.desc())).all())


def read_form(data, session: Session, clinic_id: int, patient: Patient, current: RemsEnrollment | None) -> Form:
    """The enrollment form, validated; a correction needs its reason, an id must not be another patient's."""
    form = Form(data)
    value = form.text("enrollment_id", "REMS patient enrollment ID", required=True, max_len=ID_MAX)
    if value and "enrollment_id" not in form.errors and (problem := id_problem(value, "REMS patient enrollment ID")):
        form.errors["enrollment_id"] = problem
    day = form.date("enrolled_on", "Enrollment date", not_future=True)
    if day is not None and day < REMS_START:
        form.errors["enrolled_on"] = "Enrollment date: the Spravato REMS began in March 2019."
    form.values["enrolled_on_parsed"] = day
    reason = form.text("reason", "Reason for the correction", required=current is not None, max_len=500)
    if "reason" not in form.errors and (problem := control_problem(reason, "Reason for the correction")):
        form.errors["reason"] = problem
    if current is not None and not form.errors and value == current.enrollment_id and day == current.enrolled_on:
        form.errors["enrollment_id"] = "That is the enrollment already on record; nothing to correct."
    if value and "enrollment_id" not in form.errors:
        latest = (select(func.max(RemsEnrollment.id)).where(RemsEnrollment.clinic_id == clinic_id)
                  .group_by(RemsEnrollment.patient_id))
        clash = session.exec(select(RemsEnrollment.id).where(
            RemsEnrollment.clinic_id == clinic_id, RemsEnrollment.id.in_(latest),
            RemsEnrollment.enrollment_id == value, RemsEnrollment.patient_id != patient.id)).first()
        if clash is not None:
            form.errors["enrollment_id"] = "Another patient of this clinic has that REMS enrollment ID."
    form.values["reason"] = reason
    return form


def record(session: Session, clinic_id: int, patient: Patient, form: Form, *, current: RemsEnrollment | None,
           seen_id: str, user_id: int) -> RemsEnrollment:
    """Append the new enrollment row, if the current row is still the one the form was shown with."""
    if seen_id != (str(current.id) if current else ""):
        raise Stale("The REMS enrollment was changed since you opened the page (perhaps by someone else). "
                    "Nothing was saved; review it and try again.")
    row = RemsEnrollment(clinic_id=clinic_id, patient_id=patient.id, enrollment_id=form.values["enrollment_id"],
                         enrolled_on=form.values["enrolled_on_parsed"], corrects_id=current.id if current else None,
                         reason=form.values["reason"] if current else "", recorded_by_id=user_id, recorded_at=utcnow())
    session.add(row)
    session.flush()
    return row
