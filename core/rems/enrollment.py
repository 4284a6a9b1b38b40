"""REMS enrollment ids: the patient's (recorded on the chart) and the rules both ids follow.

Enrollments are append-only: recording again corrects the current row with a written reason,
and the form names the row it corrects, so two people correcting at once cannot both win.
"""
from __future__ import annotations

import re
from datetime import date

from sqlalchemy import func
from sqlmodel import Session, select

from core.form_fields import GliaForm, IsoDateField, Posted, TextField
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


class EnrollmentForm(GliaForm):
    """The enrollment form; a correction needs its reason, an id must not be another patient's."""

    enrollment_id = TextField("REMS patient enrollment ID", required=True, max_len=ID_MAX)
    enrolled_on = IsoDateField("Enrollment date", not_future=True)
    reason = TextField("Reason for the correction", max_len=500)
    current_id = Posted(max_len=12)  # the row the page showed as current

    def __init__(self, *args, session: Session, clinic_id: int, patient: Patient, current: RemsEnrollment | None, **kw):
        super().__init__(*args, **kw)
        self.session, self.clinic_id, self.patient, self.current = session, clinic_id, patient, current

    def validate(self, extra_validators=None):
        super().validate(extra_validators)
        value, day, current = self.enrollment_id.data, self.enrolled_on.day, self.current
        if value and not self.enrollment_id.errors and (problem := id_problem(value, "REMS patient enrollment ID")):
            self.enrollment_id.errors.append(problem)
        if day is not None and day < REMS_START:
            self.enrolled_on.errors.append("Enrollment date: the Spravato REMS began in March 2019.")
        if current is not None and not self.reason.errors and not self.reason.data:
            self.reason.errors.append("Reason for the correction is required.")
        if current is not None and not self.messages and value == current.enrollment_id and day == current.enrolled_on:
            self.enrollment_id.errors.append("That is the enrollment already on record; nothing to correct.")
        if value and not self.enrollment_id.errors:
            latest = (select(func.max(RemsEnrollment.id)).where(RemsEnrollment.clinic_id == self.clinic_id)
                      .group_by(RemsEnrollment.patient_id))
            clash = self.session.exec(select(RemsEnrollment.id).where(
                RemsEnrollment.clinic_id == self.clinic_id, RemsEnrollment.id.in_(latest),
                RemsEnrollment.enrollment_id == value, RemsEnrollment.patient_id != self.patient.id)).first()
            if clash is not None:
                self.enrollment_id.errors.append("Another patient of this clinic has that REMS enrollment ID.")
        return not self.messages


def record(session: Session, clinic_id: int, patient: Patient, form: EnrollmentForm, *,
           current: RemsEnrollment | None, user_id: int) -> RemsEnrollment:
    """Append the new enrollment row, if the current row is still the one the form was shown with."""
    if form.current_id.data != (str(current.id) if current else ""):
        raise Stale("The REMS enrollment was changed since you opened the page (perhaps by someone else). "
                    "Nothing was saved; review it and try again.")
    row = RemsEnrollment(clinic_id=clinic_id, patient_id=patient.id, enrollment_id=form.enrollment_id.data,
                         enrolled_on=form.enrolled_on.day, corrects_id=current.id if current else None,
                         reason=form.reason.data if current else "", recorded_by_id=user_id, recorded_at=utcnow())
    session.add(row)
    session.flush()
    return row
