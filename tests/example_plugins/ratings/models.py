"""The ratings plugin's one table; its name starts with the plugin name, as every plugin table must."""
from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from core.models import ts


class Rating(SQLModel, table=True):
    """How a patient rated a visit, 1 (poor) to 5 (excellent)."""

    __tablename__ = "ratings_rating"
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    score: int
    created_at: datetime | None = ts(nullable=False)
