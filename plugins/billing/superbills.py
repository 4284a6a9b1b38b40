"""Superbills: what a payer needs on an out-of-network claim, checked, numbered, issued once per period.

Each field maps to its CMS-1500 box (DOMAIN.md "Billing plugin"). A superbill carries only paid
services; it is issued once per patient, scope and period (a chain: a voided one is followed by
its replacement), and every refusal says what to fix and where.
"""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.vocab import SEXES
from core.models import Clinic, Patient, Provider, utcnow
from core.validators import ein_problem, icd10_description, icd10_problem, npi_problem
from plugins.billing import ndc
from plugins.billing.charges import LETTERS, active_diagnoses, line_problems, same_day_codes
from plugins.billing.documents import hook_session, latest_in_chain, render, sha256, voids
from plugins.billing.errors import BillingError
from plugins.billing.models import BillingCharge, BillingInvoice, BillingPayment, BillingSuperbill
from plugins.billing.money import invoice_label, local_date, next_number
from plugins.billing.payments import _live_payments, invoice_totals, method_text
from plugins.billing.tables import fees_by_code

TEMPLATE = "billing/pdf/superbill.html"


class SuperbillInvalid(BillingError):
    def __init__(self, errors: list[tuple[str, str]]):
        super().__init__("This superbill cannot be issued yet.", 422)
        self.errors = errors


def label(number: int) -> str:
    return f"SB-{number:06d}"


def period_for(scope: str, day: date) -> tuple[date, date]:
    if scope == "month":
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        return start, end
    if scope == "year":
        return date(day.year, 1, 1), date(day.year, 12, 31)
    return day, day


def paid_lines(session: Session, clinic_id: int, patient_id: int, start: date, end: date) -> list[BillingCharge]:
    """Lines in the period whose invoice is paid in full (net of refunds) and not void."""
    charges = session.exec(select(BillingCharge).where(
        BillingCharge.clinic_id == clinic_id, BillingCharge.patient_id == patient_id,
        BillingCharge.status == "billed", BillingCharge.service_date >= start, BillingCharge.service_date <= end)
        .order_by(BillingCharge.service_date, BillingCharge.id)).all()
    invoice_ids = {c.invoice_id for c in charges}
    invoices = session.exec(select(BillingInvoice).where(BillingInvoice.id.in_(invoice_ids or {-1}))).all()
    totals = invoice_totals(session, list(invoices))
    paid = {i for i, t in totals.items() if not t.void and t.balance <= 0 and t.net_paid > 0}
    return [c for c in charges if c.invoice_id in paid]


def address(obj) -> list[str]:
    city = ", ".join(p for p in (obj.city, f"{obj.state} {obj.postal_code}".strip()) if p)
    return [line for line in (obj.address_line1, obj.address_line2, city) if line]


def _clinic_errors(clinic: Clinic) -> list[tuple[str, str]]:
    errors = []
    if not clinic.ein:
        errors.append(("The clinic has no EIN (tax ID, box 25): add it in Clinic settings.", "Clinic settings"))
    elif ein_problem(clinic.ein):
        errors.append((f"The clinic's EIN: {ein_problem(clinic.ein)} Correct it in Clinic settings.",
                       "Clinic settings"))
    npi2 = npi_problem(clinic.npi or "", kind=2)
    if npi2:
        errors.append((f"The clinic's billing NPI (box 33a): {npi2} Correct it in Clinic settings.", "Clinic settings"))
    if not clinic.address_line1 or not clinic.city:
        errors.append(("The clinic has no street address (boxes 32 and 33): add it in Clinic settings.",
                       "Clinic settings"))
    if not clinic.phone:
        errors.append(("The clinic has no phone number (box 33): add it in Clinic settings.", "Clinic settings"))
    return errors


def _provider(p: Provider) -> dict:
    return {"name": f"{p.first_name} {p.last_name}", "credentials": p.credentials, "npi": p.npi,
            "license_number": p.license_number, "license_state": p.license_state}


def _payments(session: Session, clinic: Clinic, invoice_ids: set[int]) -> list[dict]:
    rows = session.exec(select(BillingPayment).where(BillingPayment.clinic_id == clinic.id,
                                                     BillingPayment.invoice_id.in_(invoice_ids or {-1}),
                                                     _live_payments())
                        .order_by(BillingPayment.received_at, BillingPayment.id)).all()
    numbers = {i.id: i.number for i in session.exec(select(BillingInvoice).where(
        BillingInvoice.id.in_(invoice_ids or {-1}))).all()}
    return [{"date": local_date(clinic, p.received_at).isoformat(), "kind": p.kind,
             "method": method_text(session, p, clinic), "receipt": p.receipt_label,
             "invoice": invoice_label(numbers[p.invoice_id]),
             "amount_cents": -p.amount_cents if p.kind == "refund" else p.amount_cents} for p in rows]


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
    diagnoses = active_diagnoses(session, clinic.id, patient.id)
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
        description = d.description if problem else d.description or icd10_description(d.code)
        dx.append({"letter": letter, "code": d.code.strip().upper(), "description": description})

    errors += _clinic_errors(clinic)
    if not patient.address_line1 or not patient.city:
        errors.append(("The patient has no address (box 5): add it on the patient's chart.", "Chart"))
    if patient.sex not in SEXES or patient.sex == "U":
        errors.append(("The patient's sex (box 3) is not recorded: set it on the patient's chart.", "Chart"))

    providers = {p.id: p for p in session.exec(select(Provider).where(
        Provider.clinic_id == clinic.id, Provider.id.in_({c.provider_id for c in lines} or {-1}))).all()}
    for p in providers.values():
        problem = npi_problem(p.npi or "", kind=1)
        if problem:
            errors.append((f"Provider {p.display_name} (box 24J): {problem} Correct it in Providers.", "Providers"))
        if not p.license_number.strip() or len(p.license_state.strip()) != 2:
            errors.append((f"Provider {p.display_name} has no license number and state, which payers ask for on "
                           f"out-of-network claims: add them in Providers.", "Providers"))

    numbers = {i.id: i.number for i in session.exec(select(BillingInvoice).where(
        BillingInvoice.id.in_({c.invoice_id for c in lines} or {-1}))).all()}
    index = {c.id: n for n, c in enumerate(lines, start=1)}
    for c, message in line_problems(lines, fees_by_code(session, clinic.id), len(dx),
                                    same_day_codes(session, clinic.id, patient.id, lines)):
        tag = f"Line {index[c.id]} ({c.code}, {c.service_date.isoformat()})"
        where = "Fee schedule" if "Drug products" in message else invoice_label(numbers[c.invoice_id])
        errors.append((f"{tag}: {message}", where))
    out_lines = [{
        "date": c.service_date.isoformat(), "pos": c.place_of_service, "code": c.code, "modifiers": c.modifiers.split(),
        "descriptor": c.descriptor, "pointers": "".join(c.pointers.replace(",", "").split()).upper(),
        "charge_cents": c.amount_cents, "units": c.units, "dose": c.dose,
        "ndc": ndc.claim(c.ndc, c.ndc_unit, c.ndc_quantity) if c.ndc else "",
        "npi": providers[c.provider_id].npi if c.provider_id in providers else "",
    } for c in lines]

    main = providers.get(lines[0].provider_id) if lines else None
    total = sum(c.amount_cents for c in lines)
    data = {
        "scope": scope, "period_start": start.isoformat(), "period_end": end.isoformat(),
        "service_start": lines[0].service_date.isoformat() if lines else "",
        "service_end": lines[-1].service_date.isoformat() if lines else "",
        "practice": {"name": clinic.name, "address": address(clinic), "phone": clinic.phone},
        "facility": {"name": clinic.name, "address": address(clinic)},
        "tax_id": clinic.ein, "tax_id_type": "EIN", "billing_npi": clinic.npi,
        "provider": _provider(main) if main else {},
        "providers": [_provider(p) for p in providers.values()],
        "patient": {"name": patient.legal_name, "dob": patient.dob.isoformat(), "address": address(patient),
                    "member_id": patient.member_id, "sex": SEXES.get(patient.sex, "")},
        "diagnoses": dx, "lines": out_lines, "total_cents": total, "paid_cents": total, "balance_cents": 0,
        "payments": _payments(session, clinic, set(numbers)),
        "accept_assignment": "No",
        "signature": {"name": signer or (main.display_name if main else ""),
                      "date": local_date(clinic, None).isoformat()},
        "extra": {},
    }
    return data, errors


def extra_fields(clinic: Clinic, patient: Patient, data: dict) -> dict:
    """What other plugins add to a superbill (superbill_extra_fields, through the clinic's relay)."""
    from core.hooks import relay

    items, _errors = relay(clinic).collect("superbill_extra_fields", expect=dict, clinic=clinic, patient=patient,
                                          superbill=data)
    extra = {}
    for item in items:
        extra.update({str(k): str(v) for k, v in item.items()})
    return extra


def superbill_html(clinic: Clinic, data: dict, number: int, void: dict | None = None) -> str:
    from plugins.billing.documents import pdf_html

    return pdf_html(TEMPLATE, clinic=clinic, sb=data, label=label(number), void=void)


def render_superbill(clinic: Clinic, data: dict, number: int) -> tuple[str, bytes]:
    from core.pdf import html_to_pdf

    html = superbill_html(clinic, data, number)
    return html, html_to_pdf(html, clinic=clinic)


# -- one superbill per patient, scope and period -------------------------------------------------

def slot_head(session: Session, clinic_id: int, patient_id: int, scope: str, start: date) -> BillingSuperbill | None:
    """The newest superbill of this patient, scope and period (void or not)."""
    return session.exec(select(BillingSuperbill).where(
        BillingSuperbill.clinic_id == clinic_id, BillingSuperbill.patient_id == patient_id,
        BillingSuperbill.scope == scope, BillingSuperbill.period_start == start)
        .order_by(BillingSuperbill.revision.desc())).first()


class AlreadyIssued(BillingError):
    def __init__(self, existing: BillingSuperbill):
        super().__init__(f"{existing.label} already covers this period. To correct it, void it from its page and "
                         f"reissue.", 409)
        self.existing = existing


def next_slot(session: Session, clinic_id: int, patient_id: int, scope: str, start: date) -> tuple[int, int | None]:
    """(revision, replaces id) for the next superbill of this slot; AlreadyIssued while one is valid."""
    head = slot_head(session, clinic_id, patient_id, scope, start)
    if head is None:
        return 0, None
    if not voids(session, clinic_id, "superbill", [head.id]):
        raise AlreadyIssued(head)
    return head.revision + 1, head.id


def store_superbill(session: Session, clinic: Clinic, patient: Patient, data: dict, number: int, pdf: bytes,
                    user_id: int | None, revision: int = 0, replaces_id: int | None = None) -> BillingSuperbill:
    """Insert the issued superbill; a slot taken meanwhile (a concurrent or repeated run) is AlreadyIssued."""
    sb = BillingSuperbill(clinic_id=clinic.id, patient_id=patient.id, number=number, scope=data["scope"],
                          period_start=date.fromisoformat(data["period_start"]),
                          period_end=date.fromisoformat(data["period_end"]), revision=revision, data=data, pdf=pdf,
                          sha256=sha256(pdf), replaces_id=replaces_id, issued_at=utcnow(), issued_by_id=user_id)
    try:
        with session.begin_nested():
            session.add(sb)
            session.flush()
    except IntegrityError:
        raise AlreadyIssued(slot_head(session, clinic.id, patient.id, sb.scope, sb.period_start)) from None
    return sb


def issue_superbill(session: Session, clinic: Clinic, patient: Patient, scope: str, day: date,
                    user_id: int | None, signer: str = "") -> BillingSuperbill:
    """Validate, number, render and store one superbill in the caller's transaction.

    A voided superbill of the same period is replaced (the new one points back at it).
    """
    start, end = period_for(scope, day)
    revision, replaces_id = next_slot(session, clinic.id, patient.id, scope, start)
    data, errors = build_superbill(session, clinic, patient, start, end, scope, signer)
    if errors:
        raise SuperbillInvalid(errors)
    number = next_number(session, clinic.id, "superbill")
    with hook_session(session):
        data["extra"] = extra_fields(clinic, patient, data)
        _html, pdf = render_superbill(clinic, data, number)
    return store_superbill(session, clinic, patient, data, number, pdf, user_id, revision, replaces_id)


def void_marked(session: Session, clinic: Clinic, sb: BillingSuperbill) -> bytes:
    """The voided superbill as issued, marked VOID on every page with its replacement, for staff."""
    mark = voids(session, clinic.id, "superbill", [sb.id])[sb.id]
    newest = latest_in_chain(session, BillingSuperbill, clinic.id, sb)
    earlier = {"service_start": sb.data["period_start"], "service_end": sb.data["period_end"],  # issued before
               "providers": [sb.data.get("provider", {})], "payments": []}                     # these fields
    _html, pdf = render(session, clinic, TEMPLATE, sb={**earlier, **sb.data}, label=sb.label, void={
        "date": local_date(clinic, mark.voided_at), "reason": mark.reason,
        "replacement": newest.label if newest.id != sb.id else "", "sha256": sb.sha256})
    return pdf


def patient_ids_with_paid_services(session: Session, clinic_id: int, year: int) -> list[int]:
    start, end = date(year, 1, 1), date(year, 12, 31)
    pids = session.exec(select(BillingCharge.patient_id).where(
        BillingCharge.clinic_id == clinic_id, BillingCharge.status == "billed",
        BillingCharge.service_date >= start, BillingCharge.service_date <= end).distinct()).all()
    return sorted(pid for pid in pids if paid_lines(session, clinic_id, pid, start, end))
