"""Charge lines from care, the rules a line must meet, and invoices (issued once, voided, never edited)."""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from core.models import Clinic, Diagnosis, Modality, OutcomeScore, TreatmentSession, utcnow
from plugins.billing import ndc
from plugins.billing.documents import void, voids
from plugins.billing.errors import BillingError
from plugins.billing.models import BillingCharge, BillingDrugProduct, BillingFee, BillingInvoice
from plugins.billing.money import invoice_label, local_date, next_number
from plugins.billing.tables import deleted_codes, drug_products, fees_by_code, line_rules

LETTERS = "ABCDEFGHIJKL"
DRUG_CODES = ("J3490", "J0013")


@dataclass
class PlannedLine:
    """One code of a session; J3490 stays one line per session and its dose column carries the mg."""

    code: str
    units: int = 1
    dose_mg: float | None = None
    rule: str = "treatment"  # which diagnoses support it (data/line_rules.json "pointers")
    note: str = ""

    @property
    def dose(self) -> str:
        return f"{self.dose_mg:g} mg" if self.dose_mg else ""


def plan_lines(modality: Modality, *, dose_mg: float | None, minutes: int | None, settings: dict) -> list[PlannedLine]:
    """The codes one session of ``modality`` is billed with (rules in DOMAIN.md, "Billing plugin")."""
    visit = settings.get("office_visit_code") or "99213"
    if modality == Modality.iv_ketamine:
        lines = [PlannedLine("96365")]
        extra = max(0, (minutes or 0) - 60)
        added_hours = extra // 60 + (1 if extra % 60 > 30 else 0)  # an added hour counts past 30 minutes
        if added_hours:
            lines.append(PlannedLine("96366", units=added_hours))
        lines.append(PlannedLine("J3490", dose_mg=dose_mg))
        return lines
    if modality == Modality.im_ketamine:
        return [PlannedLine("96372"), PlannedLine("J3490", dose_mg=dose_mg)]
    if modality == Modality.esketamine_nasal:
        mg = int(round(dose_mg or 56))
        if settings.get("esketamine_billing") == "g_codes":
            return [PlannedLine("G2082" if mg <= 56 else "G2083", dose_mg=mg)]
        return [PlannedLine(visit), PlannedLine("J0013", units=mg, dose_mg=mg)]
    return [PlannedLine(visit)]


def active_diagnoses(session: Session, clinic_id: int, patient_id: int) -> list[Diagnosis]:
    """The patient's current diagnoses in box-21 order: the primary one is A."""
    return list(session.exec(select(Diagnosis).where(
        Diagnosis.clinic_id == clinic_id, Diagnosis.patient_id == patient_id, Diagnosis.resolved_on.is_(None))
        .order_by(Diagnosis.is_primary.desc(), Diagnosis.id)).all())


def supporting(codes: list[str], rule: str) -> list[int]:
    """Indexes of the diagnoses that support a line of ``rule`` (the first matching group wins)."""
    rules = line_rules()
    groups = rules["pointers"].get(rule, rules["pointers"]["treatment"])
    for group in groups:
        prefixes = tuple(rules["diagnosis_groups"][group])
        found = [i for i, code in enumerate(codes[:12]) if code.strip().upper().startswith(prefixes)]
        if found:
            return found[:4]
    return [0] if codes else []


def pointers_for(codes: list[str], rule: str) -> str:
    return "".join(LETTERS[i] for i in supporting(codes, rule)) or "A"


def treatment_minutes(t: TreatmentSession) -> int | None:
    if t.duration_minutes:
        return t.duration_minutes
    if t.started_at and t.monitoring_at:
        return int((t.monitoring_at - t.started_at).total_seconds() // 60)
    return None


def assessment_lines(session: Session, clinic: Clinic, patient_id: int, day: date) -> list[PlannedLine]:
    """96127 once per instrument (PHQ-9, GAD-7) scored on the chart on the day of service."""
    tz = ZoneInfo(clinic.timezone)
    start = datetime.combine(day, time.min, tz)
    taken = session.exec(select(OutcomeScore.instrument).where(
        OutcomeScore.clinic_id == clinic.id, OutcomeScore.patient_id == patient_id,
        OutcomeScore.taken_at >= start, OutcomeScore.taken_at < start + timedelta(days=1))).all()
    return [PlannedLine("96127", rule=f"96127 {i.value}", note=i.value)
            for i in sorted(set(taken), key=lambda i: i.value)]


def dose_mg(dose: str) -> float | None:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(?:mg)?", (dose or "").strip().lower())
    return float(match.group(1)) if match else None


def fill_drug(charge: BillingCharge, products: list[BillingDrugProduct]) -> None:
    """Take the line's NDC, unit and quantity from the stocked product its dose uses."""
    if charge.code not in DRUG_CODES:
        return
    product = ndc.product_for(products, charge.code, dose_mg(charge.dose))
    charge.drug_product_id = product.id if product else None
    charge.ndc = product.ndc if product else ""
    charge.ndc_unit = product.unit if product else ""
    charge.ndc_quantity = ndc.quantity(dose_mg(charge.dose) or 0, product.mg_per_unit) if product else ""


def _charge(clinic: Clinic, fee: BillingFee, *, patient_id: int, provider_id: int, treatment_id: int | None,
            day: date, units: int, dose: str, pointers: str, note: str = "") -> BillingCharge:
    descriptor = f"{fee.descriptor} ({note})" if note else fee.descriptor
    return BillingCharge(clinic_id=clinic.id, patient_id=patient_id, treatment_id=treatment_id,
                         provider_id=provider_id, service_date=day, place_of_service=clinic.place_of_service or "11",
                         code=fee.code, descriptor=descriptor[:120], units=units, unit_price_cents=fee.price_cents,
                         amount_cents=fee.price_cents * units, dose=dose, pointers=pointers, created_at=utcnow())


def draft_charges(session: Session, clinic: Clinic, treatment: TreatmentSession, settings: dict) -> list[BillingCharge]:
    """Draft lines for a discharged session, pointing at the diagnoses that support them; none twice."""
    exists = session.exec(select(BillingCharge.id).where(BillingCharge.clinic_id == clinic.id,
                                                         BillingCharge.treatment_id == treatment.id)).first()
    if exists is not None or treatment.clinic_id != clinic.id:
        return []
    fees = fees_by_code(session, clinic.id)
    products = drug_products(session, clinic.id)
    codes = [d.code for d in active_diagnoses(session, clinic.id, treatment.patient_id)]
    when = local_date(clinic, treatment.discharged_at or treatment.started_at or treatment.scheduled_at)
    planned = plan_lines(treatment.modality, dose_mg=treatment.dose_mg, minutes=treatment_minutes(treatment),
                         settings=settings) + assessment_lines(session, clinic, treatment.patient_id, when)
    made = []
    for line in planned:
        charge = _charge(clinic, fees[line.code], patient_id=treatment.patient_id, provider_id=treatment.provider_id,
                         treatment_id=treatment.id, day=when, units=line.units, dose=line.dose,
                         pointers=pointers_for(codes, line.rule), note=line.note)
        fill_drug(charge, products)
        session.add(charge)
        made.append(charge)
    session.flush()
    return made


def add_line(session: Session, clinic: Clinic, treatment: TreatmentSession, code: str, units: int) -> BillingCharge:
    """A manager adds a code to a session's draft (a same-day visit, a brief assessment)."""
    fee = fees_by_code(session, clinic.id).get(code)
    if fee is None or not fee.active:
        raise BillingError("Choose a code from the fee schedule.")
    codes = [d.code for d in active_diagnoses(session, clinic.id, treatment.patient_id)]
    when = local_date(clinic, treatment.discharged_at or treatment.started_at or treatment.scheduled_at)
    charge = _charge(clinic, fee, patient_id=treatment.patient_id, provider_id=treatment.provider_id,
                     treatment_id=treatment.id, day=when, units=units, dose="",
                     pointers=pointers_for(codes, code if code in line_rules()["pointers"] else "treatment"))
    session.add(charge)
    session.flush()
    return charge


# -- the rules a line must meet before it is billed, and again before a superbill carries it ----------

def same_day_codes(session: Session, clinic_id: int, patient_id: int, lines: list[BillingCharge]) -> dict[date, set[str]]:
    """Codes per date of service: these lines and the patient's other billed lines of those dates."""
    days = {c.service_date for c in lines}
    by_date: dict[date, set[str]] = defaultdict(set)
    others = session.exec(select(BillingCharge).where(
        BillingCharge.clinic_id == clinic_id, BillingCharge.patient_id == patient_id,
        BillingCharge.status == "billed", BillingCharge.service_date.in_(days or {date.min}))).all()
    live = set(live_invoice_ids(session, clinic_id, {c.invoice_id for c in others}))
    for c in list(lines) + [o for o in others if o.invoice_id in live]:
        by_date[c.service_date].add(c.code)
    return by_date


def live_invoice_ids(session: Session, clinic_id: int, ids) -> list[int]:
    ids = {i for i in ids if i}
    dead = voids(session, clinic_id, "invoice", ids)
    return [i for i in ids if i not in dead]


def line_problems(lines: list[BillingCharge], fees: dict[str, BillingFee], n_dx: int,
                  by_date: dict[date, set[str]]) -> list[tuple[BillingCharge, str]]:
    """Each (line, message) that keeps these lines off an invoice or a superbill."""
    rules = line_rules()
    em, procedures = set(rules["evaluation_and_management"]), set(rules["modifier_25_procedures"])
    deleted = deleted_codes()
    found = []
    for c in lines:
        def say(message: str):
            found.append((c, message))

        if c.code in deleted:
            d = deleted[c.code]
            say(f"{c.code} was deleted on {d['deleted_on']}; use {d['use_instead']} instead.")
        pointers = list(c.pointers.replace(",", "").replace(" ", "").upper())
        if not 1 <= len(pointers) <= 4:
            say("give 1 to 4 diagnosis pointers (A-L).")
        for p in pointers:
            if p not in LETTERS[:n_dx]:
                listed = f"A-{LETTERS[n_dx - 1]}" if n_dx else "none"
                say(f"pointer {p} is not a listed diagnosis (listed: {listed}).")
        fee = fees.get(c.code)
        primaries = set((fee.addon_of if fee else "").split())
        if primaries and not primaries & by_date[c.service_date]:
            say(f"add-on code {c.code} needs its primary code ({', '.join(sorted(primaries))}) on the same date.")
        if c.code in DRUG_CODES:
            if not c.dose:
                say(f"{c.code} needs the dose given: enter it on the session's charges.")
            problem = ndc.problem(c.ndc)
            if problem:
                say(f"{c.code} needs the NDC of the product used, and {problem}: set the clinic's NDC under "
                    f"Drug products in the Fee schedule.")
            elif not c.ndc_unit or not c.ndc_quantity:
                say(f"{c.code} needs the NDC unit and quantity: check the product under Drug products.")
        if c.code in ("G2082", "G2083") and "J0013" in by_date[c.service_date]:
            say(f"{c.code} already includes the drug; it cannot be billed with J0013 on the same date.")
        mods = c.modifiers.split()
        if len(mods) > 4:
            say("at most 4 modifiers.")
        same_day = sorted(procedures & by_date[c.service_date])
        if c.code in em and same_day and "25" not in mods:
            say(f"the visit {c.code} is billed on the same day as {', '.join(same_day)}: add modifier 25 when "
                f"the visit was separately identifiable (its own evaluation, documented), or remove the line.")
    return found


class LinesInvalid(BillingError):
    """Lines that cannot be billed; ``problems`` keeps (charge, message) for the form."""

    def __init__(self, problems: list[tuple[BillingCharge, str]]):
        super().__init__("Some lines cannot be billed yet: " + " ".join(
            f"{c.code}: {m}" for c, m in problems), 422)
        self.problems = problems


def create_invoice(session: Session, clinic_id: int, patient_id: int, charge_ids: list[int],
                   user_id: int | None) -> BillingInvoice:
    """Bill draft lines on a new invoice with the clinic's next number (in the caller's transaction).

    Drug lines take their NDC from the clinic's products now, and every line must meet the
    claim rules: once billed, a line is fixed, corrected only by voiding the invoice.
    """
    charges = list(session.exec(select(BillingCharge).where(
        BillingCharge.clinic_id == clinic_id, BillingCharge.patient_id == patient_id,
        BillingCharge.id.in_(charge_ids or [-1]), BillingCharge.status == "draft")
        .order_by(BillingCharge.service_date, BillingCharge.id)).all())
    if not charges:
        raise BillingError("There are no draft lines to invoice: they may already be on an invoice.", 409)
    products = drug_products(session, clinic_id)
    for c in charges:
        fill_drug(c, products)
    n_dx = min(12, len(active_diagnoses(session, clinic_id, patient_id)))
    problems = line_problems(charges, fees_by_code(session, clinic_id), n_dx,
                             same_day_codes(session, clinic_id, patient_id, charges))
    if problems:
        raise LinesInvalid(problems)
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


def void_invoice(session: Session, clinic_id: int, invoice_id: int, reason: str, user_id: int | None,
                 net_paid: int) -> list[BillingCharge]:
    """Void an invoice nothing is paid on; its lines come back as new drafts to correct and bill again."""
    invoice = session.exec(select(BillingInvoice).where(BillingInvoice.id == invoice_id,
                                                        BillingInvoice.clinic_id == clinic_id)).first()
    if invoice is None:
        raise BillingError("No such invoice.", 404)
    if net_paid:
        raise BillingError(f"{invoice_label(invoice.number)} has payments: refund or correct them before voiding it.",
                           409)
    void(session, clinic_id, "invoice", invoice.id, reason, user_id)
    copies = []
    for c in session.exec(select(BillingCharge).where(BillingCharge.invoice_id == invoice.id,
                                                      BillingCharge.clinic_id == clinic_id)
                          .order_by(BillingCharge.id)).all():
        copy = BillingCharge(**{k: v for k, v in c.model_dump().items()
                                if k not in ("id", "invoice_id", "status", "created_at")},
                             status="draft", created_at=utcnow())
        session.add(copy)
        copies.append(copy)
    session.flush()
    return copies
