"""Signed outcome reports: the exact PDF a clinician signed, kept as signed."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.models import ts


class OutcomeReport(SQLModel, table=True):
    """A signed measurement-based-care report. Append-only: a later report is a new row."""

    __tablename__ = "outcome_report"
    __immutable__ = True
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    purpose: str = Field(max_length=40)  # re_authorization, appeal, progress
    pdf: bytes = Field(sa_type=sa.LargeBinary)
    sha256: str = Field(max_length=64)
    summary: dict = Field(default_factory=dict, sa_type=sa.JSON)  # the figures it states, for the list
    signed_by_id: int = Field(foreign_key="user.id")
    signed_at: datetime = ts(nullable=False)
