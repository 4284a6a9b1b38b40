"""How far the patient is through their latest induction series, for the chart.

The chart's statement budget is fixed, so this adds no query of its own: ``columns`` are scalar
subqueries that ride on the chart's sessions statement, and ``from_row`` reads them back.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import select

from core.models import SessionStatus, TreatmentSession
from core.scheduling.models import Booking, CoursePlan
from core.scheduling.patterns import PATTERNS
from core.scheduling.planner import MAINTENANCE

DONE = (SessionStatus.discharged,)
OFF = (SessionStatus.cancelled, SessionStatus.no_show)


@dataclass(frozen=True)
class CourseProgress:
    label: str
    planned: int
    done: int
    cancelled: int

    @property
    def left(self) -> int:
        return self.planned - self.done - self.cancelled


def columns(clinic_id: int, patient_id: int) -> list:
    """The latest induction plan's pattern and its sessions planned, given and cancelled."""
    latest = (select(CoursePlan.id).where(CoursePlan.clinic_id == clinic_id, CoursePlan.patient_id == patient_id,
                                          CoursePlan.pattern != MAINTENANCE)
              .order_by(CoursePlan.created_at.desc(), CoursePlan.id.desc()).limit(1).scalar_subquery())
    pattern = select(CoursePlan.pattern).where(CoursePlan.id == latest).scalar_subquery()

    def count(*statuses):
        q = (select(func.count()).select_from(Booking).join(TreatmentSession, TreatmentSession.id == Booking.treatment_id)
             .where(Booking.plan_id == latest, TreatmentSession.clinic_id == clinic_id))
        return (q.where(TreatmentSession.status.in_(statuses)) if statuses else q).scalar_subquery()

    return [pattern.label("course_pattern"), count().label("course_planned"), count(*DONE).label("course_done"),
            count(*OFF).label("course_off")]


def from_row(row) -> CourseProgress | None:
    if row is None or row.course_pattern is None:
        return None
    pattern = PATTERNS.get(row.course_pattern)
    return CourseProgress(pattern.label if pattern else row.course_pattern, row.course_planned, row.course_done,
                          row.course_off)
