"""Scheduling tables: chairs, opening hours, closures, and the booking of each session.

A session's chair and length live in ``session_booking`` beside treatment_session rather than in it:
sessions scheduled before chairs existed (or from the single "Schedule a session" form) simply have
no booking row, and the day view lists them as not in a chair.
"""
from __future__ import annotations

from datetime import date, datetime, time

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.models import Modality, enum_type, ts


class Chair(SQLModel, table=True):
    """A treatment chair or room: one patient at a time, for the whole booked length."""

    __table_args__ = (sa.UniqueConstraint("clinic_id", "name", name="uq_chair_clinic_name"),)
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    name: str = Field(max_length=60)
    active: bool = True


class OpeningHours(SQLModel, table=True):
    """When the clinic treats, per weekday (0 = Monday); a weekday without a row is closed."""

    __tablename__ = "opening_hours"
    clinic_id: int = Field(foreign_key="clinic.id", primary_key=True)
    weekday: int = Field(primary_key=True)
    opens: time
    closes: time


class ClinicClosure(SQLModel, table=True):
    """A day the clinic is closed besides the weekly hours (a staff day, a local holiday)."""

    __tablename__ = "clinic_closure"
    clinic_id: int = Field(foreign_key="clinic.id", primary_key=True)
    day: date = Field(primary_key=True)
    reason: str = Field(max_length=120)


class CoursePlan(SQLModel, table=True):
    """What was planned from the chart: an induction series or the next maintenance session."""

    __tablename__ = "course_plan"
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    modality: Modality = Field(sa_type=enum_type(Modality, 20))
    pattern: str = Field(max_length=40)  # a key of core.scheduling.patterns.PATTERNS, or "maintenance"
    interval_weeks: int | None = None  # maintenance: weeks after the last session
    provider_id: int = Field(foreign_key="provider.id")
    chair_id: int | None = Field(default=None, foreign_key="chair.id")
    created_by_id: int = Field(foreign_key="user.id")
    created_at: datetime = ts(nullable=False)


class Booking(SQLModel, table=True):
    """A session's chair and booked length (and the plan that made it)."""

    __tablename__ = "session_booking"
    treatment_id: int = Field(foreign_key="treatment_session.id", primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    chair_id: int | None = Field(default=None, foreign_key="chair.id", index=True)
    minutes: int
    plan_id: int | None = Field(default=None, foreign_key="course_plan.id")
