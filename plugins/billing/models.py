"""Billing tables. Money is integer cents; every row carries clinic_id.

Invoices, billed charge lines, payments, superbills, estimates, voids and portal-link records
are append-only: a correction is a new linked row (a refund, a void plus a replacement), never
an edit. The ORM guard (core.models) and a database trigger (migrations) both hold that line.
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
    dose_unit: str = Field(default="", max_length=10)  # mg on drug lines
    active: bool = True


class BillingDrugProduct(SQLModel, table=True):
    """A drug the clinic stocks, with the NDC a claim's drug line carries (clinic-editable).

    ``dose_mg`` 0 matches any dose (a vial); a kit matches its own dose (Spravato 56 or 84 mg).
    The NDC quantity of a line is its dose divided by ``mg_per_unit`` (mg per mL, per kit).
    """

    __tablename__ = "billing_drug_product"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "code", "dose_mg"),)
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    code: str = Field(max_length=10)  # J3490, J0013
    label: str = Field(max_length=120)
    ndc: str = Field(default="", max_length=11)  # 11 digits, 5-4-2 without hyphens
    unit: str = Field(default="UN", max_length=2)  # ML, UN, GR, ME, F2
    mg_per_unit: float
    dose_mg: int = 0


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
    """A numbered invoice; its lines are BillingCharge rows that point at it. Issued, it never changes."""

    __tablename__ = "billing_invoice"
    __immutable__ = True
    __table_args__ = (sa.UniqueConstraint("clinic_id", "number"),)
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    number: int
    total_cents: int
    issued_at: datetime = ts(nullable=False, index=True)
    issued_by_id: int | None = Field(default=None, foreign_key="user.id")


class BillingCharge(SQLModel, table=True):
    """A service line: a draft from care until a manager puts it on an invoice, then fixed."""

    __tablename__ = "billing_charge"

    @property
    def __immutable__(self) -> bool:
        """A billed line is immutable; a draft may still be reviewed, edited or removed.

        Judged on the status the database holds, so the flush that bills a draft passes.
        """
        history = sa.inspect(self).attrs.status.history
        stored = history.deleted[0] if history.deleted else self.status
        return stored == "billed"

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
    drug_product_id: int | None = Field(default=None, foreign_key="billing_drug_product.id")
    ndc: str = Field(default="", max_length=13)  # 11 digits, taken from the product when the line is billed
    ndc_unit: str = Field(default="", max_length=2)
    ndc_quantity: str = Field(default="", max_length=12)  # "0.7": up to 3 decimals, as a claim writes it
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
    replaces_id: int | None = Field(default=None, foreign_key="billing_payment.id")  # a corrected entry
    idempotency_key: str = Field(max_length=64)
    request_hash: str = Field(max_length=64)
    received_at: datetime = ts(nullable=False)
    recorded_by_id: int | None = Field(default=None, foreign_key="user.id")

    @property
    def receipt_label(self) -> str:
        """The receipt number, written the same on the page, the PDF, the portal and the file name."""
        return f"R-{self.id:06d}"


class BillingSuperbill(SQLModel, table=True):
    """An issued superbill: the exact PDF bytes with their SHA-256 and the data they show.

    One chain per patient, scope and period: revision 0 first, each replacement of a voided one
    the next revision. The unique index makes a second issue for the same slot fail at the
    database, so a batch run twice (or after a kill) cannot leave two.
    """

    __tablename__ = "billing_superbill"
    __immutable__ = True
    __table_args__ = (sa.UniqueConstraint("clinic_id", "number"),
                      sa.Index("ux_billing_superbill_slot", "clinic_id", "patient_id", "scope", "period_start",
                               "revision", unique=True))
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    number: int
    scope: str = Field(max_length=10)  # visit, month, year
    period_start: date
    period_end: date
    revision: int = 0
    data: dict = Field(sa_type=sa.JSON)
    pdf: bytes = Field(sa_type=sa.LargeBinary)
    sha256: str = Field(max_length=64)
    replaces_id: int | None = Field(default=None, foreign_key="billing_superbill.id")
    issued_at: datetime = ts(nullable=False)
    issued_by_id: int | None = Field(default=None, foreign_key="user.id")

    @property
    def label(self) -> str:
        return f"SB-{self.number:06d}"


class BillingVoid(SQLModel, table=True):
    """Voiding is a record of its own, so the voided row (superbill, estimate, payment, invoice) never changes.

    The replacement points back at what it replaces (``replaces_id`` on the new row), so a void
    may come first and its replacement later.
    """

    __tablename__ = "billing_void"
    __immutable__ = True
    __table_args__ = (sa.UniqueConstraint("clinic_id", "document_type", "document_id"),)
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    document_type: str = Field(max_length=20)  # superbill, estimate, payment, invoice
    document_id: int
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
    replaces_id: int | None = Field(default=None, foreign_key="billing_estimate.id")
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


MODELS = [BillingFee, BillingDrugProduct, BillingCounter, BillingPackage, BillingInvoice, BillingCharge,
          BillingPayment, BillingSuperbill, BillingVoid, BillingEstimate, BillingPortalLink]
