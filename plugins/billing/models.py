"""Billing tables. Money is integer cents; every row carries clinic_id.

Payments, superbills, their voids, estimates and portal-link records are append-only: a
correction is a new linked row (a refund, a void plus a reissue), never an edit.
"""
from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.models import ts


class BillingFee(SQLModel, table=True):
    """One line of a clinic's fee schedule: our own short descriptor, never licensed CPT text."""

    __tablename__ = "billing_fee"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "code"),)
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    code: str = Field(max_length=10)
    descriptor: str = Field(max_length=120)
    price_cents: int
    kind: str = Field(default="service", max_length=10)  # service, drug
    addon_of: str = Field(default="", max_length=60)  # primary codes an add-on needs ("96365")
    ndc: str = Field(default="", max_length=13)
    dose_unit: str = Field(default="", max_length=10)  # mg on drug lines
    active: bool = True


class BillingCounter(SQLModel, table=True):
    """Per-clinic number sequences; the row is locked while a number is taken (gapless invoices)."""

    __tablename__ = "billing_counter"
    clinic_id: int = Field(foreign_key="clinic.id", primary_key=True)
    kind: str = Field(max_length=20, primary_key=True)
    last_value: int = 0


class BillingPackage(SQLModel, table=True):
    """A prepaid series of N sessions; each package-credit payment draws one session down."""

    __tablename__ = "billing_package"
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    name: str = Field(max_length=120)
    sessions_total: int
    sessions_used: int = 0
    paid_cents: int
    method: str = Field(max_length=10)  # how the package itself was paid
    created_at: datetime = ts(nullable=False)
    created_by_id: int | None = Field(default=None, foreign_key="user.id")


class BillingInvoice(SQLModel, table=True):
    """A numbered invoice; its lines are BillingCharge rows that point at it."""

    __tablename__ = "billing_invoice"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "number"),)
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    number: int
    total_cents: int
    issued_at: datetime = ts(nullable=False, index=True)
    issued_by_id: int | None = Field(default=None, foreign_key="user.id")


class BillingCharge(SQLModel, table=True):
    """A service line: a draft from care until a manager puts it on an invoice."""

    __tablename__ = "billing_charge"
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    treatment_id: int | None = Field(default=None, foreign_key="treatment_session.id", index=True)
    invoice_id: int | None = Field(default=None, foreign_key="billing_invoice.id", index=True)
    provider_id: int = Field(foreign_key="provider.id")
    service_date: date
    place_of_service: str = Field(default="11", max_length=2)
    code: str = Field(max_length=10)
    modifiers: str = Field(default="", max_length=20)  # up to 4, space separated
    descriptor: str = Field(max_length=120)
    units: int = 1
    unit_price_cents: int
    amount_cents: int
    ndc: str = Field(default="", max_length=13)
    dose: str = Field(default="", max_length=20)  # "35 mg"
    pointers: str = Field(default="A", max_length=8)  # diagnosis letters, e.g. "AB"
    status: str = Field(default="draft", max_length=10)  # draft, billed
    created_at: datetime = ts(nullable=False)


class BillingPayment(SQLModel, table=True):
    """A payment or a refund (a new entry, never an edit); keyed so a double submit records once."""

    __tablename__ = "billing_payment"
    __immutable__ = True
    __table_args__ = (sa.UniqueConstraint("clinic_id", "idempotency_key"),)
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    invoice_id: int = Field(foreign_key="billing_invoice.id", index=True)
    kind: str = Field(max_length=10)  # payment, refund
    method: str = Field(max_length=10)  # cash, card, check, package
    amount_cents: int  # always positive; the kind gives the sign
    reference: str = Field(default="", max_length=60)  # check number, card last four
    package_id: int | None = Field(default=None, foreign_key="billing_package.id")
    refund_of_id: int | None = Field(default=None, foreign_key="billing_payment.id")
    idempotency_key: str = Field(max_length=64)
    request_hash: str = Field(max_length=64)
    received_at: datetime = ts(nullable=False)
    recorded_by_id: int | None = Field(default=None, foreign_key="user.id")


class BillingSuperbill(SQLModel, table=True):
    """An issued superbill: the exact PDF bytes with their SHA-256 and the data they show."""

    __tablename__ = "billing_superbill"
    __immutable__ = True
    __table_args__ = (sa.UniqueConstraint("clinic_id", "number"),)
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    number: int
    scope: str = Field(max_length=10)  # visit, month, year
    period_start: date
    period_end: date
    data: dict = Field(sa_type=sa.JSON)
    pdf: bytes = Field(sa_type=sa.LargeBinary)
    sha256: str = Field(max_length=64)
    replaces_id: int | None = Field(default=None, foreign_key="billing_superbill.id")
    issued_at: datetime = ts(nullable=False)
    issued_by_id: int | None = Field(default=None, foreign_key="user.id")

    @property
    def label(self) -> str:
        return f"SB-{self.number:06d}"


class BillingSuperbillVoid(SQLModel, table=True):
    """Voiding is a record of its own, so the superbill row itself never changes."""

    __tablename__ = "billing_superbill_void"
    __immutable__ = True
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    superbill_id: int = Field(foreign_key="billing_superbill.id", unique=True)
    reason: str = Field(max_length=300)
    voided_at: datetime = ts(nullable=False)
    voided_by_id: int | None = Field(default=None, foreign_key="user.id")


class BillingEstimate(SQLModel, table=True):
    """A Good Faith Estimate (45 CFR 149.610) as issued: data, PDF bytes and SHA-256."""

    __tablename__ = "billing_estimate"
    __immutable__ = True
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    total_cents: int
    first_service_date: date
    due_date: date
    data: dict = Field(sa_type=sa.JSON)
    pdf: bytes = Field(sa_type=sa.LargeBinary)
    sha256: str = Field(max_length=64)
    issued_at: datetime = ts(nullable=False)
    issued_by_id: int | None = Field(default=None, foreign_key="user.id")


class BillingPortalLink(SQLModel, table=True):
    """Staff told a patient a document waits in the portal (no attachment, no mail server)."""

    __tablename__ = "billing_portal_link"
    __immutable__ = True
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    document_type: str = Field(max_length=20)  # superbill, receipt, estimate
    document_id: int
    sent_at: datetime = ts(nullable=False)
    sent_by_id: int | None = Field(default=None, foreign_key="user.id")


MODELS = [BillingFee, BillingCounter, BillingPackage, BillingInvoice, BillingCharge, BillingPayment,
          BillingSuperbill, BillingSuperbillVoid, BillingEstimate, BillingPortalLink]
