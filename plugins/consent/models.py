"""Consent tables. Signed and issued rows are append-only (ORM guard and a database trigger):
a correction or revocation is a new row that points at the old one."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.models import ts

SIGNER_ROLES = ("patient", "representative")
METHODS = ("typed", "drawn", "witnessed_verbal")
SEVERITIES = ("absolute", "relative")


class ConsentTemplate(SQLModel, table=True):
    """One version of a clinic's consent text; an edit adds a row with the next version."""

    __tablename__ = "consent_template"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "kind", "version"),)
    __immutable__ = True
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    kind: str = Field(max_length=40)
    version: int
    title: str = Field(max_length=200)
    body: str = Field(sa_type=sa.Text)  # Markdown (a small, escaped subset)
    acknowledgements: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    change_note: str = Field(default="", max_length=300)
    created_by_id: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = ts(nullable=False)


class SignedConsent(SQLModel, table=True):
    """The patient's (or representative's) signature: the exact text, who signed how, bound by SHA-256.

    The consent is complete, and its PDF issued, when a clinician attests (ConsentAttestation, which
    holds that PDF). Consents signed before attestations existed were issued at signing: their PDF
    and its digest are here, and they stay valid as issued. For the others ``pdf`` is empty and
    ``pdf_sha256`` is "" (the column stays NOT NULL: SQLite cannot relax it without rebuilding a
    table that other rows reference).
    """

    __tablename__ = "consent_signed"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "submission_token"),)
    __immutable__ = True
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    template_id: int = Field(foreign_key="consent_template.id")
    kind: str = Field(max_length=40)
    version: int
    title: str = Field(max_length=200)
    signed_text: str = Field(sa_type=sa.Text)
    text_sha256: str = Field(max_length=64)
    signer_role: str = Field(max_length=20)  # patient, representative
    signer_name: str = Field(max_length=200)
    representative_authority: str = Field(default="", max_length=200)
    method: str = Field(max_length=20)  # typed, drawn, witnessed_verbal
    signature_png: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    channel: str = Field(max_length=20)  # tablet, portal
    signed_at: datetime = ts(nullable=False)
    ip: str = Field(default="", max_length=45)
    user_agent: str = Field(default="", max_length=300)
    staff_user_id: int | None = Field(default=None, foreign_key="user.id")
    staff_name: str = Field(default="", max_length=200)
    submission_token: str = Field(max_length=64)
    supersedes_id: int | None = Field(default=None, foreign_key="consent_signed.id")
    pdf: bytes = Field(default=b"", sa_type=sa.LargeBinary)  # only for consents issued at signing
    pdf_sha256: str = Field(default="", max_length=64)
    signature_sha256: str = Field(max_length=64)  # binds signer, time and both digests

    @property
    def issued_at_signing(self) -> bool:
        return bool(self.pdf_sha256)


class ConsentAttestation(SQLModel, table=True):
    """The clinician's signed statement that they explained the treatment, and the PDF it issued.

    One per signed consent; the PDF carries both signatures and is never rendered again.
    """

    __tablename__ = "consent_attestation"
    __immutable__ = True
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    consent_id: int = Field(foreign_key="consent_signed.id", unique=True)
    clinician_user_id: int = Field(foreign_key="user.id")
    provider_id: int = Field(foreign_key="provider.id")
    clinician_name: str = Field(max_length=200)
    credentials: str = Field(default="", max_length=40)
    statement: str = Field(sa_type=sa.Text)
    attested_at: datetime = ts(nullable=False)
    ip: str = Field(default="", max_length=45)
    statement_sha256: str = Field(max_length=64)
    pdf: bytes = Field(sa_type=sa.LargeBinary)
    pdf_sha256: str = Field(max_length=64)
    document_sha256: str = Field(max_length=64)  # binds the patient's signature, the statement and the PDF


class ConsentRevocation(SQLModel, table=True):
    """A patient withdrew a consent (or staff recorded that they did); the consent row stays."""

    __tablename__ = "consent_revocation"
    __immutable__ = True
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    consent_id: int = Field(foreign_key="consent_signed.id", unique=True)
    reason: str = Field(max_length=500)
    by_user_id: int | None = Field(default=None, foreign_key="user.id")
    at: datetime = ts(nullable=False)


class ContraindicationItem(SQLModel, table=True):
    """One question of the clinic's screening list (editable; screenings keep a snapshot)."""

    __tablename__ = "consent_contraindication"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "code"),)
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    code: str = Field(max_length=60)
    label: str = Field(max_length=300)
    severity: str = Field(max_length=10)  # absolute, relative
    modalities: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    active: bool = True
    position: int = 0


class Screening(SQLModel, table=True):
    """A completed contraindication screening with the questions as they were asked."""

    __tablename__ = "consent_screening"
    __immutable__ = True
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    answers: list[dict] = Field(default_factory=list, sa_type=sa.JSON)  # code, label, severity, modalities, yes
    answered_by: str = Field(max_length=20)  # patient, staff
    user_id: int | None = Field(default=None, foreign_key="user.id")
    channel: str = Field(max_length=20)  # tablet, portal, staff
    answered_at: datetime = ts(nullable=False)
    text_sha256: str = Field(max_length=64)
    ip: str = Field(default="", max_length=45)


class Acknowledgement(SQLModel, table=True):
    """A clinician's signed acknowledgement of a relative contraindication or a high blood pressure."""

    __tablename__ = "consent_acknowledgement"
    __immutable__ = True
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    screening_id: int | None = Field(default=None, foreign_key="consent_screening.id", index=True)
    treatment_id: int | None = Field(default=None, foreign_key="treatment_session.id", index=True)
    item_code: str = Field(max_length=60)
    item_label: str = Field(max_length=300)
    rationale: str = Field(sa_type=sa.Text)
    clinician_user_id: int = Field(foreign_key="user.id")
    clinician_name: str = Field(max_length=200)
    signed_at: datetime = ts(nullable=False)
    ip: str = Field(default="", max_length=45)
    text_sha256: str = Field(max_length=64)
    # a blood-pressure acknowledgement covers this reading and any lower one, never a higher one
    vital_id: int | None = Field(default=None, foreign_key="vital_sign.id")
    systolic: int | None = None
    diastolic: int | None = None


class ItemClearance(SQLModel, table=True):
    """A clinician's signed review confirming that a "yes" to a screening item no longer applies.

    A later screening answering "no" does not clear an item on its own (anyone, or the patient at
    home, could answer it): only this record does, and only for the one "yes" it names.
    """

    __tablename__ = "consent_item_clearance"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "yes_screening_id", "item_code"),)
    __immutable__ = True
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    item_code: str = Field(max_length=60)
    item_label: str = Field(max_length=300)
    yes_screening_id: int = Field(foreign_key="consent_screening.id")  # the answer it clears
    no_screening_id: int = Field(foreign_key="consent_screening.id")  # the later answer it confirms
    reason: str = Field(sa_type=sa.Text)
    clinician_user_id: int = Field(foreign_key="user.id")
    clinician_name: str = Field(max_length=200)
    signed_at: datetime = ts(nullable=False)
    ip: str = Field(default="", max_length=45)
    text_sha256: str = Field(max_length=64)


MODELS = [ConsentTemplate, SignedConsent, ConsentAttestation, ConsentRevocation, ContraindicationItem, Screening, Acknowledgement,
          ItemClearance]
