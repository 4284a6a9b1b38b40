"""Spravato REMS tables: patient enrollments and submitted Patient Monitoring Forms.

Both are append-only. An enrollment is corrected by a new row that names the row it
corrects and why, so the chart keeps who recorded which id when; a submitted monitoring
form keeps the exact PDF and CSV that went to the REMS, with their SHA-256.
"""
from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.models import ts


class RemsEnrollment(SQLModel, table=True):
    """A patient's REMS enrollment id as staff recorded it; the newest row per patient is current."""

    __tablename__ = "rems_enrollment"
    __immutable__ = True
    __table_args__ = (sa.Index("ix_rems_enrollment_clinic_patient", "clinic_id", "patient_id"),)
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id")
    enrollment_id: str = Field(max_length=40)
    enrolled_on: date
    corrects_id: int | None = Field(default=None, foreign_key="rems_enrollment.id")
    reason: str = Field(default="", max_length=500)  # why a correction was needed
    recorded_by_id: int = Field(foreign_key="user.id")
    recorded_at: datetime = ts(nullable=False)


class RemsMonitoringForm(SQLModel, table=True):
    """A Patient Monitoring Form marked as submitted: the exact files, never changed afterwards."""

    __tablename__ = "rems_monitoring_form"
    __immutable__ = True
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    treatment_id: int = Field(foreign_key="treatment_session.id", unique=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    pdf: bytes = Field(sa_type=sa.LargeBinary)
    pdf_sha256: str = Field(max_length=64)
    csv: str = Field(sa_type=sa.Text)
    csv_sha256: str = Field(max_length=64)
    reference: str = Field(default="", max_length=100)  # the REMS confirmation, if staff noted one
    submitted_by_id: int = Field(foreign_key="user.id")
    submitted_at: datetime = ts(nullable=False)
