"""Coordination tables: letter drafts, signed letters, disclosures, permissions and due letters.

A draft (CoordinationLetter) is editable until it is signed; signing freezes it into a
CoordinationDocument that holds the exact PDF bytes and their SHA-256 and never changes.
Every time a signed letter leaves the clinic a CoordinationDisclosure row is appended.
"""
from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.models import ts


class CoordinationLetter(SQLModel, table=True):
    """A letter being written: the clinician's free text, until it is signed."""

    __tablename__ = "coordination_letter"
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    recipient_id: int = Field(foreign_key="outside_clinician.id")
    kind: str = Field(max_length=40)
    status: str = Field(default="draft", max_length=12)  # draft, signed
    fields: dict = Field(default_factory=dict, sa_type=sa.JSON)  # free-text parts by name
    include_psychotherapy_notes: bool = False
    include_part2: bool = False
    created_by_id: int = Field(foreign_key="user.id")
    created_at: datetime = ts(nullable=False)
    updated_at: datetime = ts(nullable=False)
    document_id: int | None = Field(default=None, foreign_key="coordination_document.id")
    version: int = 1  # bumped on every save, so a stale editor is caught


class CoordinationDocument(SQLModel, table=True):
    """A signed letter: the exact PDF bytes, their hash and what they disclose. Append-only."""

    __tablename__ = "coordination_document"
    __immutable__ = True
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    recipient_id: int = Field(foreign_key="outside_clinician.id")
    kind: str = Field(max_length=40)
    pdf: bytes = Field(sa_type=sa.LargeBinary)
    sha256: str = Field(max_length=64)
    contents: str = Field(max_length=1000)  # what the letter discloses, by section (no PHI values)
    flagged_medication_ids: list[int] = Field(default_factory=list, sa_type=sa.JSON)
    signed_by_id: int = Field(foreign_key="user.id")
    signed_at: datetime = ts(nullable=False)


class CoordinationDisclosure(SQLModel, table=True):
    """One disclosure of a signed letter to an outside clinician (HIPAA accounting). Append-only."""

    __tablename__ = "coordination_disclosure"
    __immutable__ = True
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    recipient_id: int = Field(foreign_key="outside_clinician.id")
    document_id: int = Field(foreign_key="coordination_document.id", index=True)
    method: str = Field(max_length=20)  # fax, mail, secure_email, hand_delivery
    sent_on: date
    description: str = Field(max_length=1000)
    user_id: int = Field(foreign_key="user.id")
    recorded_at: datetime = ts(nullable=False)


class CoordinationPermission(SQLModel, table=True):
    """The patient's permission to share with one recipient; may also authorize sensitive data.

    Revocation is the only change allowed; a new permission is a new row.
    """

    __tablename__ = "coordination_permission"
    __immutable__ = True
    __mutable_fields__ = ("revoked_at", "revoked_by_id")
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    recipient_id: int = Field(foreign_key="outside_clinician.id")
    granted_on: date
    expires_on: date | None = None
    covers_psychotherapy_notes: bool = False
    covers_part2: bool = False
    recorded_by_id: int = Field(foreign_key="user.id")
    recorded_at: datetime = ts(nullable=False)
    revoked_at: datetime | None = ts()
    revoked_by_id: int | None = Field(default=None, foreign_key="user.id")

    def active_on(self, day: date) -> bool:
        return self.revoked_at is None and self.granted_on <= day and (self.expires_on is None or day <= self.expires_on)


class CoordinationDue(SQLModel, table=True):
    """A letter that should be written (progress after induction) or a dismissed concern.

    ``key`` makes each reason unique per patient: "induction" for the progress letter,
    "med:<id>" for a dismissed medication concern.
    """

    __tablename__ = "coordination_due"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "patient_id", "kind", "key"),)
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    kind: str = Field(max_length=40)
    key: str = Field(max_length=40)
    recipient_id: int | None = Field(default=None, foreign_key="outside_clinician.id")
    created_at: datetime = ts(nullable=False)
    resolved_at: datetime | None = ts()
    resolution: str = Field(default="", max_length=20)  # sent, dismissed
    resolved_by_id: int | None = Field(default=None, foreign_key="user.id")
