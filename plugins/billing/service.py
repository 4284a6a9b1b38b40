"""Billing rules kept apart from the web layer, so views, the CLI, the seed and tests share them.

Everything here works on an explicit SQLModel session and clinic; money is integer cents.
"""
from __future__ import annotations

import csv
import hashlib
import re
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, text
from sqlmodel import Session, select

from core.models import Clinic, Diagnosis, Modality, Patient, Provider, TreatmentSession, utcnow
from core.validators import ein_problem, icd10_description, icd10_problem, npi_problem
from plugins.billing.models import (BillingCharge, BillingCounter, BillingEstimate, BillingFee, BillingInvoice,
                                    BillingPackage, BillingPayment, BillingSuperbill, BillingSuperbillVoid)

DATA = Path(__file__).resolve().parent / "data"
LETTERS = "ABCDEFGHIJKL"
MAX_AMOUNT_CENTS = 10_000_000  # $100,000.00: anything larger is a typo at a clinic's front desk
METHODS = {"cash": "Cash", "card": "Card", "check": "Check", "package": "Package credit"}
PAYMENT_METHODS = ("cash", "card", "check")
OFFICE_VISITS = tuple(f"992{n:02d}" for n in (2, 3, 4, 5, 11, 12, 13, 14, 15))
GFE_DISPUTE_CENTS = 40_000  # $400: the patient-provider dispute threshold


class BillingError(Exception):
    """A refusal with a message fit to show the user; ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.message = message
        self.status = status


# -- code tables -----------------------------------------------------------------------

@lru_cache(maxsize=1)
def default_fees() -> list[dict]:
    with (DATA / "fee_schedule.csv").open(newline="") as f:
        return [dict(row, price_cents=int(row["price_cents"])) for row in csv.DictReader(f)]


@lru_cache(maxsize=1)
def deleted_codes() -> dict[str, dict]:
    with (DATA / "deleted_codes.csv").open(newline="") as f:
        return {row["code"]: row for row in csv.DictReader(f)}


def ensure_fee_schedule(session: Session, clinic_id: int) -> None:
    """Give a clinic the default schedule for any code it does not have yet (prices stay the clinic's)."""
    have = set(session.exec(select(BillingFee.code).where(BillingFee.clinic_id == clinic_id)).all())
    for row in default_fees():
        if row["code"] not in have:
            session.add(BillingFee(clinic_id=clinic_id, **row))
    session.flush()


def fees_by_code(session: Session, clinic_id: int) -> dict[str, BillingFee]:
    ensure_fee_schedule(session, clinic_id)
    return {f.code: f for f in session.exec(select(BillingFee).where(BillingFee.clinic_id == clinic_id)).all()}


# -- amounts ---------------------------------------------------------------------------

_AMOUNT = re.compile(r"^\$?\s*(\d{1,9})(?:\.(\d{1,2}))?$")


def parse_amount(raw: str | None, *, field: str = "Amount") -> int:
    """Dollars typed in a form to integer cents, or a BillingError that says how to write it."""
    value = (raw or "").strip()
    if not value:
        raise BillingError(f"{field}: enter an amount such as 125.00.")
    if "," in value:
        raise BillingError(f"{field}: write the amount without commas, such as 1000.00.")
    if value.startswith("-"):
        raise BillingError(f"{field} must be more than zero.")
    match = _AMOUNT.match(value)
    if not match:
        raise BillingError(f"{field}: enter dollars and at most two decimals, such as 125.50.")
    cents = int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))
    if cents <= 0:
        raise BillingError(f"{field} must be more than zero.")
    if cents > MAX_AMOUNT_CENTS:
        raise BillingError(f"{field} is larger than any fee here ($100,000.00 at most): check the figure.")
    return cents


def ndc_is_valid(ndc: str) -> bool:
    """An 11-digit NDC in the 5-4-2 form claims use (12345-6789-01)."""
    return bool(re.fullmatch(r"\d{5}-\d{4}-\d{2}", ndc))


def dollars(cents: int) -> str:
    """Cents as a plain form value ("125.50"), for pre-filled inputs."""
    return f"{cents // 100}.{cents % 100:02d}"


# -- numbering -------------------------------------------------------------------------

def next_number(session: Session, clinic_id: int, kind: str) -> int:
    """Take the next number of a per-clinic sequence inside the caller's transaction.

    One UPDATE ... RETURNING both locks the counter row (PostgreSQL row lock; SQLite already
    holds its write lock since BEGIN IMMEDIATE) and increments it, so numbers are unique, and
    a rolled-back transaction gives its number back: no gaps.
    """
    params = {"c": clinic_id, "k": kind}
    value = session.execute(text("UPDATE billing_counter SET last_value = last_value + 1 "
                                 "WHERE clinic_id = :c AND kind = :k RETURNING last_value"), params).scalar()
    if value is None:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("INSERT INTO billing_counter (clinic_id, kind, last_value) VALUES (:c, :k, 0) "
                                 "ON CONFLICT DO NOTHING"), params)
        else:
            session.execute(text("INSERT OR IGNORE INTO billing_counter (clinic_id, kind, last_value) "
                                 "VALUES (:c, :k, 0)"), params)
        value = session.execute(text("UPDATE billing_counter SET last_value = last_value + 1 "
                                     "WHERE clinic_id = :c AND kind = :k RETURNING last_value"), params).scalar()
    return int(value)


def invoice_label(number: int) -> str:
    return f"INV-{number:06d}"


# -- charges from care -----------------------------------------------------------------

@dataclass
class PlannedLine:
    """One code of a session; J3490 stays one line per session and its dose column carries the mg."""

    code: str
    units: int = 1
    dose: str = ""


def _fmt_dose(mg: float | None) -> str:
    return f"{mg:g} mg" if mg else ""


def plan_lines(modality: Modality, *, dose_mg: float | None, minutes: int | None, settings: dict) -> list[PlannedLine]:
    """The codes one session of ``modality`` is billed with (rules in DOMAIN.md, "Billing plugin")."""
    visit = settings.get("office_visit_code") or "99213"
    if modality == Modality.iv_ketamine:
        lines = [PlannedLine("96365")]
        extra = max(0, (minutes or 0) - 60)
        added_hours = extra // 60 + (1 if extra % 60 > 30 else 0)  # an added hour counts past 30 minutes
        if added_hours:
            lines.append(PlannedLine("96366", units=added_hours))
        lines.append(PlannedLine("J3490", dose=_fmt_dose(dose_mg)))
        return lines
    if modality == Modality.im_ketamine:
        return [PlannedLine("96372"), PlannedLine("J3490", dose=_fmt_dose(dose_mg))]
    if modality == Modality.esketamine_nasal:
        mg = int(round(dose_mg or 56))
        if settings.get("esketamine_billing") == "g_codes":
            return [PlannedLine("G2082" if mg <= 56 else "G2083", dose=f"{mg} mg")]
        return [PlannedLine(visit), PlannedLine("J0013", units=mg, dose=f"{mg} mg")]
    return [PlannedLine(visit)]


def local_date(clinic: Clinic, moment: datetime | None) -> date:
    return (moment or utcnow()).astimezone(ZoneInfo(clinic.timezone)).date()


def treatment_minutes(t: TreatmentSession) -> int | None:
    if t.duration_minutes:
        return t.duration_minutes
    if t.started_at and t.monitoring_at:
        return int((t.monitoring_at - t.started_at).total_seconds() // 60)
    return None


def draft_charges(session: Session, clinic: Clinic, treatment: TreatmentSession, settings: dict) -> list[BillingCharge]:
    """Draft lines for a discharged session; none twice for the same session."""
    exists = session.exec(select(BillingCharge.id).where(BillingCharge.clinic_id == clinic.id,
                                                         BillingCharge.treatment_id == treatment.id)).first()
    if exists is not None or treatment.clinic_id != clinic.id:
        return []
    fees = fees_by_code(session, clinic.id)
    when = local_date(clinic, treatment.discharged_at or treatment.started_at or treatment.scheduled_at)
    made = []
    for line in plan_lines(treatment.modality, dose_mg=treatment.dose_mg, minutes=treatment_minutes(treatment),
                           settings=settings):
        fee = fees[line.code]
        charge = BillingCharge(clinic_id=clinic.id, patient_id=treatment.patient_id, treatment_id=treatment.id,
                               provider_id=treatment.provider_id, service_date=when,
                               place_of_service=clinic.place_of_service or "11", code=fee.code,
                               descriptor=fee.descriptor, units=line.units, unit_price_cents=fee.price_cents,
                               amount_cents=fee.price_cents * line.units, ndc=fee.ndc, dose=line.dose,
                               pointers="A", created_at=utcnow())
        session.add(charge)
        made.append(charge)
    session.flush()
    return made


# -- invoices and payments -------------------------------------------------------------

def create_invoice(session: Session, clinic_id: int, patient_id: int, charge_ids: list[int],
                   user_id: int | None) -> BillingInvoice:
    """Put draft lines on a new invoice with the clinic's next number (in the caller's transaction)."""
    charges = session.exec(select(BillingCharge).where(
        BillingCharge.clinic_id == clinic_id, BillingCharge.patient_id == patient_id,
        BillingCharge.id.in_(charge_ids or [-1]), BillingCharge.status == "draft")).all()
    if not charges:
        raise BillingError("There are no draft lines to invoice: they may already be on an invoice.", 409)
    invoice = BillingInvoice(clinic_id=clinic_id, patient_id=patient_id,
                             number=next_number(session, clinic_id, "invoice"),
                             total_cents=sum(c.amount_cents for c in charges), issued_at=utcnow(),
                             issued_by_id=user_id)
    session.add(invoice)
    session.flush()
    for c in charges:
        c.invoice_id = invoice.id
        c.status = "billed"
        session.add(c)
    session.flush()
    return invoice


@dataclass
class Totals:
    total: int = 0
    paid: int = 0
    refunded: int = 0

    @property
    def balance(self) -> int:
        """Charges - payments + refunds."""
        return self.total - self.paid + self.refunded

    @property
    def net_paid(self) -> int:
        return self.paid - self.refunded


def invoice_totals(session: Session, invoices: list[BillingInvoice]) -> dict[int, Totals]:
    """Totals for many invoices with one query (never a query per row)."""
    out = {inv.id: Totals(total=inv.total_cents) for inv in invoices}
    if not out:
        return out
    rows = session.exec(select(BillingPayment.invoice_id, BillingPayment.kind, func.sum(BillingPayment.amount_cents))
                        .where(BillingPayment.invoice_id.in_(list(out)))
                        .group_by(BillingPayment.invoice_id, BillingPayment.kind)).all()
    for invoice_id, kind, amount in rows:
        if kind == "payment":
            out[invoice_id].paid = int(amount)
        else:
            out[invoice_id].refunded = int(amount)
    return out


def _lock_invoice(session: Session, clinic_id: int, invoice_id: int) -> BillingInvoice:
    invoice = session.exec(select(BillingInvoice).where(BillingInvoice.id == invoice_id,
                                                        BillingInvoice.clinic_id == clinic_id)
                           .with_for_update().execution_options(populate_existing=True)).first()
    if invoice is None:
        raise BillingError("No such invoice.", 404)
    return invoice


def _body_hash(*parts) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def record_payment(session: Session, clinic_id: int, invoice_id: int, *, amount_cents: int | None, method: str,
                   key: str, reference: str = "", package_id: int | None = None, user_id: int | None = None,
                   seen_balance: int | None = None) -> tuple[BillingPayment, bool]:
    """Record a payment once per idempotency key; returns (payment, replayed).

    The invoice row is locked first, so two submits of one form, or two payments racing for
    the same balance, are decided one after the other on both databases.
    """
    if method not in METHODS:
        raise BillingError("Choose how the patient paid: cash, card, check or package credit.")
    if not key or len(key) > 64:
        raise BillingError("This form is missing its submission key: reload the page and try again.", 400)
    invoice = _lock_invoice(session, clinic_id, invoice_id)
    digest = _body_hash(invoice.id, "payment", method, amount_cents, reference, package_id)
    earlier = session.exec(select(BillingPayment).where(BillingPayment.clinic_id == clinic_id,
                                                        BillingPayment.idempotency_key == key)).first()
    if earlier is not None:
        if earlier.request_hash == digest:
            return earlier, True
        raise BillingError("This form was already submitted with different details: reload the invoice "
                           "and enter the payment again.", 422)
    balance = invoice_totals(session, [invoice])[invoice.id].balance
    if balance <= 0:
        raise BillingError(f"{invoice_label(invoice.number)} is already paid in full.", 409)
    package = None
    if method == "package":
        package = session.exec(select(BillingPackage).where(
            BillingPackage.id == (package_id or -1), BillingPackage.clinic_id == clinic_id,
            BillingPackage.patient_id == invoice.patient_id).with_for_update()
            .execution_options(populate_existing=True)).first()
        if package is None:
            raise BillingError("Choose one of this patient's packages to draw a session from.")
        if package.sessions_used >= package.sessions_total:
            raise BillingError(f"The package \u201c{package.name}\u201d has no sessions left.", 409)
        amount_cents = balance  # one prepaid session covers this visit's balance
        package.sessions_used += 1
        session.add(package)
    if amount_cents is None:
        raise BillingError("Amount: enter an amount such as 125.00.")
    if amount_cents > balance:
        status = 409 if seen_balance is not None and seen_balance != balance else 422
        raise BillingError(f"The amount is more than the balance of {_money(balance)}: enter at most "
                           f"{_money(balance)}.", status)
    payment = BillingPayment(clinic_id=clinic_id, patient_id=invoice.patient_id, invoice_id=invoice.id,
                             kind="payment", method=method, amount_cents=amount_cents, reference=reference[:60],
                             package_id=package.id if package else None, idempotency_key=key,
                             request_hash=digest, received_at=utcnow(), recorded_by_id=user_id)
    session.add(payment)
    session.flush()
    return payment, False


def record_refund(session: Session, clinic_id: int, payment_id: int, *, amount_cents: int, key: str,
                  user_id: int | None = None) -> tuple[BillingPayment, bool]:
    """A refund is a new entry against an earlier payment, never an edit of it."""
    original = session.exec(select(BillingPayment).where(BillingPayment.id == payment_id,
                                                         BillingPayment.clinic_id == clinic_id,
                                                         BillingPayment.kind == "payment")).first()
    if original is None:
        raise BillingError("No such payment.", 404)
    invoice = _lock_invoice(session, clinic_id, original.invoice_id)
    digest = _body_hash(invoice.id, "refund", payment_id, amount_cents)
    earlier = session.exec(select(BillingPayment).where(BillingPayment.clinic_id == clinic_id,
                                                        BillingPayment.idempotency_key == key)).first()
    if earlier is not None:
        if earlier.request_hash == digest:
            return earlier, True
        raise BillingError("This form was already submitted with different details: reload and try again.")
    refunded = session.exec(select(func.coalesce(func.sum(BillingPayment.amount_cents), 0)).where(
        BillingPayment.refund_of_id == original.id)).one()
    left = original.amount_cents - int(refunded)
    if amount_cents > left:
        raise BillingError(f"A refund can return at most what is left of this payment: {_money(left)}.", 422)
    if original.package_id is not None:
        package = session.get(BillingPackage, original.package_id)
        if amount_cents != left:
            raise BillingError("A package credit is returned whole: refund the full amount.")
        package.sessions_used = max(0, package.sessions_used - 1)
        session.add(package)
    refund = BillingPayment(clinic_id=clinic_id, patient_id=original.patient_id, invoice_id=invoice.id,
                            kind="refund", method=original.method, amount_cents=amount_cents,
                            package_id=original.package_id, refund_of_id=original.id, idempotency_key=key,
                            request_hash=digest, received_at=utcnow(), recorded_by_id=user_id)
    session.add(refund)
    session.flush()
    return refund, False


def _money(cents: int) -> str:
    from core.formatting import money

    return money(cents)


def aging(session: Session, clinic_id: int, today: date) -> tuple[list[tuple[BillingInvoice, Totals, int]], dict]:
    """Open invoices with their balance and age in days, and the total per age bucket."""
    invoices = session.exec(select(BillingInvoice).where(BillingInvoice.clinic_id == clinic_id)
                            .order_by(BillingInvoice.issued_at)).all()
    totals = invoice_totals(session, list(invoices))
    rows, buckets = [], {"0-30": 0, "31-60": 0, "61-90": 0, "90+": 0}
    for inv in invoices:
        t = totals[inv.id]
        if t.balance <= 0:
            continue
        age = (today - inv.issued_at.date()).days
        bucket = "0-30" if age <= 30 else "31-60" if age <= 60 else "61-90" if age <= 90 else "90+"
        buckets[bucket] += t.balance
        rows.append((inv, t, age))
    return rows, buckets


# -- superbills ------------------------------------------------------------------------

def period_for(scope: str, day: date) -> tuple[date, date]:
    if scope == "month":
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        return start, end
    if scope == "year":
        return date(day.year, 1, 1), date(day.year, 12, 31)
    return day, day


def paid_lines(session: Session, clinic_id: int, patient_id: int, start: date, end: date) -> list[BillingCharge]:
    """Lines in the period whose invoice is paid in full (net of refunds)."""
    charges = session.exec(select(BillingCharge).where(
        BillingCharge.clinic_id == clinic_id, BillingCharge.patient_id == patient_id,
        BillingCharge.status == "billed", BillingCharge.service_date >= start, BillingCharge.service_date <= end)
        .order_by(BillingCharge.service_date, BillingCharge.id)).all()
    invoice_ids = {c.invoice_id for c in charges}
    invoices = session.exec(select(BillingInvoice).where(BillingInvoice.id.in_(invoice_ids or {-1}))).all()
    totals = invoice_totals(session, list(invoices))
    paid = {i for i, t in totals.items() if t.balance <= 0 and t.net_paid > 0}
    return [c for c in charges if c.invoice_id in paid]


def _address(obj) -> list[str]:
    city = ", ".join(p for p in (obj.city, f"{obj.state} {obj.postal_code}".strip()) if p)
    return [line for line in (obj.address_line1, obj.address_line2, city) if line]


def build_superbill(session: Session, clinic: Clinic, patient: Patient, start: date, end: date, scope: str,
                    signer: str = "") -> tuple[dict, list[tuple[str, str]]]:
    """The superbill's content (each field with its CMS-1500 box) and what must be fixed first.

    Errors are (message, where to fix it) pairs.
    """
    errors: list[tuple[str, str]] = []
    lines = paid_lines(session, clinic.id, patient.id, start, end)
    if not lines:
        errors.append(("There are no paid services in this period: record the payment on the invoice first.",
                       "Invoices"))
    diagnoses = session.exec(select(Diagnosis).where(
        Diagnosis.clinic_id == clinic.id, Diagnosis.patient_id == patient.id, Diagnosis.resolved_on.is_(None))
        .order_by(Diagnosis.is_primary.desc(), Diagnosis.id)).all()
    if not diagnoses:
        errors.append(("The patient has no active ICD-10-CM diagnosis: add one on the patient's chart.", "Chart"))
    if len(diagnoses) > 12:
        errors.append(("A superbill lists at most 12 diagnoses (A-L): resolve the ones that no longer apply "
                       "on the patient's chart.", "Chart"))
    dx = []
    for letter, d in zip(LETTERS, diagnoses[:12]):
        problem = icd10_problem(d.code)
        if problem:
            errors.append((f"Diagnosis {letter}: {problem} Correct it on the patient's chart.", "Chart"))
            description = d.description
        else:
            description = d.description or icd10_description(d.code)
        dx.append({"letter": letter, "code": d.code.strip().upper(), "description": description})

    if not clinic.ein:
        errors.append(("The clinic has no EIN (tax ID, box 25): add it in Clinic settings.", "Clinic settings"))
    elif ein_problem(clinic.ein):
        errors.append((f"The clinic's EIN: {ein_problem(clinic.ein)} Correct it in Clinic settings.",
                       "Clinic settings"))
    npi2 = npi_problem(clinic.npi or "", kind=2)
    if npi2:
        errors.append((f"The clinic's billing NPI (box 33a): {npi2} Correct it in Clinic settings.",
                       "Clinic settings"))
    if not clinic.address_line1 or not clinic.city:
        errors.append(("The clinic has no street address (boxes 32 and 33): add it in Clinic settings.",
                       "Clinic settings"))
    if not clinic.phone:
        errors.append(("The clinic has no phone number (box 33): add it in Clinic settings.", "Clinic settings"))
    if not patient.address_line1 or not patient.city:
        errors.append(("The patient has no address (box 5): add it on the patient's chart.", "Chart"))

    providers = {p.id: p for p in session.exec(select(Provider).where(
        Provider.clinic_id == clinic.id, Provider.id.in_({c.provider_id for c in lines} or {-1}))).all()}
    for p in providers.values():
        problem = npi_problem(p.npi or "", kind=1)
        if problem:
            errors.append((f"Provider {p.display_name} (box 24J): {problem} Correct it in Providers.", "Providers"))

    deleted = deleted_codes()
    fees = fees_by_code(session, clinic.id)
    by_date: dict[date, set[str]] = defaultdict(set)
    for c in lines:
        by_date[c.service_date].add(c.code)
    out_lines = []
    for n, c in enumerate(lines, start=1):
        where = f"{invoice_label(_invoice_number(session, c.invoice_id))}"
        tag = f"Line {n} ({c.code}, {c.service_date.isoformat()})"
        if c.code in deleted:
            d = deleted[c.code]
            errors.append((f"{tag}: {c.code} was deleted on {d['deleted_on']}; use {d['use_instead']} instead.", where))
        pointers = list(c.pointers.replace(",", "").replace(" ", "").upper())
        if not 1 <= len(pointers) <= 4:
            errors.append((f"{tag}: give 1 to 4 diagnosis pointers (A-L).", where))
        for p in pointers:
            if p not in LETTERS[:len(dx)]:
                listed = f"A-{LETTERS[len(dx) - 1]}" if dx else "none"
                errors.append((f"{tag}: pointer {p} is not a listed diagnosis (listed: {listed}).", where))
        fee = fees.get(c.code)
        primaries = set((fee.addon_of if fee else "").split())
        if primaries and not primaries & by_date[c.service_date]:
            errors.append((f"{tag}: add-on code {c.code} needs its primary code ({', '.join(sorted(primaries))}) "
                           f"on the same date.", where))
        if c.code == "J3490" and (not c.ndc or not c.dose):
            errors.append((f"{tag}: J3490 needs an NDC and a dose: set the NDC in the Fee schedule and the dose "
                           f"on the session.", "Fee schedule"))
        if c.code in ("G2082", "G2083") and "J0013" in by_date[c.service_date]:
            errors.append((f"{tag}: {c.code} already includes the drug; it cannot be billed with J0013 on the "
                           f"same date.", where))
        mods = c.modifiers.split()
        if len(mods) > 4:
            errors.append((f"{tag}: at most 4 modifiers.", where))
        prov = providers.get(c.provider_id)
        out_lines.append({
            "date": c.service_date.isoformat(), "pos": c.place_of_service, "code": c.code, "modifiers": mods,
            "descriptor": c.descriptor, "pointers": "".join(pointers), "charge_cents": c.amount_cents,
            "units": c.units, "ndc": c.ndc, "dose": c.dose, "npi": prov.npi if prov else "",
        })

    main = providers.get(lines[0].provider_id) if lines else None
    total = sum(c.amount_cents for c in lines)
    data = {
        "scope": scope, "period_start": start.isoformat(), "period_end": end.isoformat(),
        "practice": {"name": clinic.name, "address": _address(clinic), "phone": clinic.phone},
        "facility": {"name": clinic.name, "address": _address(clinic)},
        "tax_id": clinic.ein, "tax_id_type": "EIN", "billing_npi": clinic.npi,
        "provider": {"name": f"{main.first_name} {main.last_name}" if main else "",
                     "credentials": main.credentials if main else "", "npi": main.npi if main else ""},
        "patient": {"name": patient.legal_name, "dob": patient.dob.isoformat(), "address": _address(patient),
                    "member_id": patient.member_id},
        "diagnoses": dx, "lines": out_lines, "total_cents": total, "paid_cents": total, "balance_cents": 0,
        "accept_assignment": "No",
        "signature": {"name": signer or (main.display_name if main else ""), "date": local_date(clinic, None).isoformat()},
        "extra": {},
    }
    return data, errors


def _invoice_number(session: Session, invoice_id: int | None) -> int:
    inv = session.get(BillingInvoice, invoice_id) if invoice_id else None
    return inv.number if inv else 0


def pdf_html(template: str, **context) -> str:
    """Render a PDF template straight from the app's Jinja environment.

    Unlike render_template this runs no request context processors, so it works the same in a
    request, in the demo seed and in batch workers, and costs nothing beyond the template itself.
    """
    from flask import current_app

    return current_app.jinja_env.get_template(template).render(fmt_date=_us_date, methods=METHODS, **context)


def superbill_html(clinic: Clinic, data: dict, label: str) -> str:
    return pdf_html("billing/pdf/superbill.html", clinic=clinic, sb=data, label=label)


def _us_date(iso: str) -> str:
    return date.fromisoformat(iso).strftime("%m/%d/%Y") if iso else ""


@contextmanager
def hook_session(session: Session):
    """Let the relay (and render_pdf) run on ``session`` outside a request (seed, CLI workers).

    The relay reads plugin state through core.db.get_session(); a second session there would
    wait for SQLite's write lock that ``session`` already holds.
    """
    from flask import g

    own = "db" not in g
    if own:
        g.db = session
    try:
        yield
    finally:
        if own:
            g.pop("db", None)


def extra_fields(clinic: Clinic, patient: Patient, data: dict) -> dict:
    """What other plugins add to a superbill (superbill_extra_fields, through the clinic's relay)."""
    from core.hooks import relay

    items, _errors = relay(clinic).collect("superbill_extra_fields", expect=dict, clinic=clinic, patient=patient,
                                          superbill=data)
    extra = {}
    for item in items:
        extra.update({str(k): str(v) for k, v in item.items()})
    return extra


def render_superbill(clinic: Clinic, data: dict, number: int) -> tuple[str, bytes]:
    from core.pdf import html_to_pdf

    html = superbill_html(clinic, data, f"SB-{number:06d}")
    return html, html_to_pdf(html, clinic=clinic)


def store_superbill(session: Session, clinic: Clinic, patient: Patient, data: dict, number: int, pdf: bytes,
                    user_id: int | None, replaces_id: int | None = None) -> BillingSuperbill:
    sb = BillingSuperbill(clinic_id=clinic.id, patient_id=patient.id, number=number, scope=data["scope"],
                          period_start=date.fromisoformat(data["period_start"]),
                          period_end=date.fromisoformat(data["period_end"]), data=data, pdf=pdf,
                          sha256=hashlib.sha256(pdf).hexdigest(), replaces_id=replaces_id, issued_at=utcnow(),
                          issued_by_id=user_id)
    session.add(sb)
    session.flush()
    return sb


def issue_superbill(session: Session, clinic: Clinic, patient: Patient, scope: str, day: date,
                    user_id: int | None, signer: str = "", replaces_id: int | None = None) -> BillingSuperbill:
    """Validate, number, render and store one superbill in the caller's transaction."""
    start, end = period_for(scope, day)
    data, errors = build_superbill(session, clinic, patient, start, end, scope, signer)
    if errors:
        raise SuperbillInvalid(errors)
    number = next_number(session, clinic.id, "superbill")
    with hook_session(session):
        data["extra"] = extra_fields(clinic, patient, data)
        _html, pdf = render_superbill(clinic, data, number)
    return store_superbill(session, clinic, patient, data, number, pdf, user_id, replaces_id)


class SuperbillInvalid(BillingError):
    def __init__(self, errors: list[tuple[str, str]]):
        super().__init__("This superbill cannot be issued yet.", 422)
        self.errors = errors


def voided_ids(session: Session, clinic_id: int, ids: list[int]) -> dict[int, BillingSuperbillVoid]:
    rows = session.exec(select(BillingSuperbillVoid).where(BillingSuperbillVoid.clinic_id == clinic_id,
                                                           BillingSuperbillVoid.superbill_id.in_(ids or [-1]))).all()
    return {v.superbill_id: v for v in rows}


def pdf_intact(doc) -> bool:
    """A stored document is served only while its bytes still match the SHA-256 taken at issue."""
    return hashlib.sha256(doc.pdf).hexdigest() == doc.sha256


# -- Good Faith Estimates --------------------------------------------------------------

def _holidays(years):
    import holidays

    return holidays.US(years=years)


def add_business_days(start: date, n: int) -> date:
    hol = _holidays({start.year, start.year + 1})
    day = start
    while n > 0:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in hol:
            n -= 1
    return day


def business_days_between(start: date, end: date) -> int:
    hol = _holidays({start.year, end.year})
    count, day = 0, start
    while day < end:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in hol:
            count += 1
    return count


def gfe_due_date(today: date, first_service: date, requested: bool) -> tuple[date, str]:
    """45 CFR 149.610(b): 1 business day when scheduled 3+ business days ahead; 3 when 10+ or on request."""
    ahead = business_days_between(today, first_service)
    if requested or ahead >= 10:
        return add_business_days(today, 3), ("requested by the patient" if requested else
                                             "scheduled at least 10 business days ahead")
    if ahead >= 3:
        return add_business_days(today, 1), "scheduled 3 to 9 business days ahead"
    return add_business_days(today, 1), "scheduled fewer than 3 business days ahead"


def build_estimate(session: Session, clinic: Clinic, patient: Patient, provider: Provider, *, modality: Modality,
                   sessions: int, dose_mg: float | None, minutes: int | None, evaluation_code: str,
                   first_service: date, requested: bool, settings: dict, today: date) -> dict:
    fees = fees_by_code(session, clinic.id)
    items = []
    if evaluation_code:
        fee = fees[evaluation_code]
        items.append({"code": fee.code, "descriptor": fee.descriptor, "units": 1, "quantity": 1,
                      "unit_cents": fee.price_cents, "amount_cents": fee.price_cents, "note": "Evaluation visit"})
    for line in plan_lines(modality, dose_mg=dose_mg, minutes=minutes, settings=settings):
        fee = fees[line.code]
        units = line.units
        per = fee.price_cents * units
        items.append({"code": fee.code, "descriptor": fee.descriptor + (f" ({line.dose})" if line.dose else ""),
                      "units": units, "quantity": sessions, "unit_cents": per, "amount_cents": per * sessions,
                      "note": f"Each of {sessions} treatment sessions"})
    diagnoses = session.exec(select(Diagnosis).where(
        Diagnosis.clinic_id == clinic.id, Diagnosis.patient_id == patient.id, Diagnosis.resolved_on.is_(None))
        .order_by(Diagnosis.is_primary.desc(), Diagnosis.id)).all()
    due, why = gfe_due_date(today, first_service, requested)
    return {
        "patient": {"name": patient.legal_name, "dob": patient.dob.isoformat()},
        "primary_service": {"description": modality.label, "date": first_service.isoformat()},
        "items": items, "total_cents": sum(i["amount_cents"] for i in items),
        "diagnoses": [{"code": d.code, "description": d.description or icd10_description(d.code)} for d in diagnoses[:12]],
        "providers": [{"name": provider.display_name, "npi": provider.npi, "tin": clinic.ein,
                       "location": ", ".join([clinic.name] + _address(clinic))}],
        "facility": {"name": clinic.name, "npi": clinic.npi, "tin": clinic.ein, "address": _address(clinic),
                     "phone": clinic.phone},
        "separate_scheduling": ["Integration psychotherapy with an outside therapist is billed by that therapist "
                                "and is not included in this estimate.",
                                "Laboratory tests, if ordered, are scheduled and billed separately."],
        "sessions": sessions, "modality": modality.value, "requested": requested,
        "issued_on": today.isoformat(), "due_date": due.isoformat(), "due_reason": why,
    }


def issue_estimate(session: Session, clinic: Clinic, patient: Patient, data: dict, user_id: int | None) -> BillingEstimate:
    from core.pdf import html_to_pdf

    html = pdf_html("billing/pdf/estimate.html", clinic=clinic, est=data)
    with hook_session(session):
        pdf = html_to_pdf(html, clinic=clinic)
    est = BillingEstimate(clinic_id=clinic.id, patient_id=patient.id, total_cents=data["total_cents"],
                          first_service_date=date.fromisoformat(data["primary_service"]["date"]),
                          due_date=date.fromisoformat(data["due_date"]), data=data, pdf=pdf,
                          sha256=hashlib.sha256(pdf).hexdigest(), issued_at=utcnow(), issued_by_id=user_id)
    session.add(est)
    session.flush()
    return est


def estimate_overruns(session: Session, clinic_id: int, patient_ids: list[int] | None = None) -> dict[int, tuple[BillingEstimate, int]]:
    """patient id -> (latest estimate, billed total) where billing exceeds the estimate by $400 or more."""
    q = select(BillingEstimate).where(BillingEstimate.clinic_id == clinic_id)
    if patient_ids is not None:
        q = q.where(BillingEstimate.patient_id.in_(patient_ids or [-1]))
    latest: dict[int, BillingEstimate] = {}
    for est in session.exec(q.order_by(BillingEstimate.issued_at)).all():
        latest[est.patient_id] = est
    if not latest:
        return {}
    billed = defaultdict(int)
    rows = session.exec(select(BillingCharge.patient_id, BillingCharge.service_date, BillingCharge.amount_cents).where(
        BillingCharge.clinic_id == clinic_id, BillingCharge.status == "billed",
        BillingCharge.patient_id.in_(list(latest)))).all()
    for pid, day, amount in rows:
        if day >= latest[pid].first_service_date:
            billed[pid] += amount
    return {pid: (est, billed[pid]) for pid, est in latest.items()
            if billed[pid] - est.total_cents >= GFE_DISPUTE_CENTS}


def charges_total(session: Session, clinic_id: int, patient_id: int) -> int:
    return int(session.exec(select(func.coalesce(func.sum(BillingCharge.amount_cents), 0)).where(
        BillingCharge.clinic_id == clinic_id, BillingCharge.patient_id == patient_id,
        BillingCharge.status == "billed")).one())


def patient_ids_with_paid_services(session: Session, clinic_id: int, year: int) -> list[int]:
    start, end = date(year, 1, 1), date(year, 12, 31)
    pids = session.exec(select(BillingCharge.patient_id).where(
        BillingCharge.clinic_id == clinic_id, BillingCharge.status == "billed",
        BillingCharge.service_date >= start, BillingCharge.service_date <= end).distinct()).all()
    return sorted(pid for pid in pids if paid_lines(session, clinic_id, pid, start, end))


def counter_value(session: Session, clinic_id: int, kind: str) -> int:
    row = session.get(BillingCounter, (clinic_id, kind))
    return row.last_value if row else 0
