"""Good Faith Estimates for self-pay patients, to the letter of 45 CFR 149.610 (DOMAIN.md).

An estimate itemizes the expected services with their diagnosis codes, names each provider,
lists what co-providers or separate scheduling add (and how to get those estimates), carries
every required disclaimer, and is due by the earliest deadline that applies.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from sqlmodel import Session, select

from core.models import Clinic, Modality, Patient, Provider, utcnow
from core.validators import icd10_description
from plugins.billing.charges import active_diagnoses, plan_lines, supporting
from plugins.billing.documents import latest_in_chain, render, sha256, voids
from plugins.billing.errors import BillingError
from plugins.billing.models import BillingCharge, BillingEstimate
from plugins.billing.money import local_date
from plugins.billing.superbills import address
from plugins.billing.tables import data_json, fees_by_code

GFE_DISPUTE_CENTS = 40_000  # $400: the patient-provider dispute threshold
TEMPLATE = "billing/pdf/estimate.html"


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
    """The earliest deadline of 45 CFR 149.610(b) that applies; a request never makes it later.

    Scheduled 3+ business days ahead: 1 business day after scheduling; 10+ ahead: 3 business
    days; on request: 3 business days after the request.
    """
    ahead = business_days_between(today, first_service)
    applies = []
    if ahead >= 10:
        applies.append((add_business_days(today, 3), "scheduled at least 10 business days ahead: within 3 business "
                                                     "days of scheduling"))
    elif ahead >= 3:
        applies.append((add_business_days(today, 1), "scheduled 3 to 9 business days ahead: within 1 business day "
                                                     "of scheduling"))
    if requested:
        applies.append((add_business_days(today, 3), "requested by the patient: within 3 business days of the "
                                                     "request"))
    if not applies:
        return add_business_days(today, 1), ("scheduled fewer than 3 business days ahead: the rule sets no deadline, "
                                             "so it is given within 1 business day")
    due = min(d for d, _why in applies)
    return due, "; ".join(why for d, why in applies if d == due)


def esketamine_plan(session: Session, clinic_id: int, planned_mg: float | None) -> list[tuple[int, float]]:
    """(sessions, dose) groups of the label's induction: twice weekly for weeks 1-4, day 1 at 56 mg.

    Doses come from the clinic's dose limits (core.dosing: the label's 56 or 84 mg); the
    schedule from data/estimates.json.
    """
    from core.dosing import limits_for

    limits = limits_for(session, clinic_id, Modality.esketamine_nasal)
    allowed = sorted(limits.allowed_doses)
    if planned_mg not in allowed:
        doses = " or ".join(f"{d:g}" for d in allowed)
        raise BillingError(f"Planned esketamine dose: {doses} mg, as the label allows.")
    induction = data_json("estimates.json")["esketamine_induction"]
    total = induction["weeks"] * induction["sessions_per_week"]
    first = limits.first_dose or planned_mg
    if first == planned_mg:
        return [(total, planned_mg)]
    return [(1, first), (total - 1, planned_mg)]


def induction_text() -> str:
    induction = data_json("estimates.json")["esketamine_induction"]
    total = induction["weeks"] * induction["sessions_per_week"]
    often = {1: "once", 2: "twice"}.get(induction["sessions_per_week"], f"{induction['sessions_per_week']} times")
    return f"Induction per the Spravato label: {often} a week for weeks 1-{induction['weeks']} ({total} sessions)"


def _items(session: Session, clinic: Clinic, modality: Modality, groups: list[tuple[int, float | None]],
           minutes: int | None, settings: dict, evaluation_code: str, dx_codes: list[str]) -> list[dict]:
    fees = fees_by_code(session, clinic.id)

    def dx_for(rule: str) -> list[str]:
        return [dx_codes[i] for i in supporting(dx_codes, rule)]

    items = []
    if evaluation_code:
        fee = fees[evaluation_code]
        items.append({"code": fee.code, "descriptor": fee.descriptor, "units": 1, "quantity": 1,
                      "unit_cents": fee.price_cents, "amount_cents": fee.price_cents, "note": "Evaluation visit",
                      "diagnoses": dx_for("treatment")})
    total_sessions = sum(n for n, _dose in groups)
    merged: dict[tuple[str, int], dict] = {}
    start = 1
    for count, dose in groups:
        for line in plan_lines(modality, dose_mg=dose, minutes=minutes, settings=settings):
            fee = fees[line.code]
            item = merged.setdefault((line.code, line.units), {
                "code": fee.code, "descriptor": fee.descriptor + (f" ({line.dose})" if line.dose else ""),
                "units": line.units, "quantity": 0, "unit_cents": fee.price_cents * line.units, "amount_cents": 0,
                "sessions": [], "diagnoses": dx_for(line.rule)})
            item["quantity"] += count
            item["amount_cents"] += item["unit_cents"] * count
            item["sessions"].append((start, start + count - 1, dose))
        start += count
    for item in merged.values():
        spans = item.pop("sessions")
        if item["quantity"] == total_sessions:
            item["note"] = f"Each of {total_sessions} treatment sessions"
        else:
            first, last, dose = spans[0]
            which = f"Session {first}" if first == last else f"Sessions {first}-{last}"
            item["note"] = f"{which} of {total_sessions}, at {dose:g} mg"
        items.append(item)
    return items


def build_estimate(session: Session, clinic: Clinic, patient: Patient, provider: Provider, *, modality: Modality,
                   sessions: int | None, dose_mg: float | None, minutes: int | None, evaluation_code: str,
                   first_service: date, requested: bool, settings: dict, today: date) -> dict:
    """The estimate's content; esketamine follows the label's induction at the planned dose."""
    if modality == Modality.esketamine_nasal:
        groups = esketamine_plan(session, clinic.id, dose_mg)
        schedule = induction_text() + (f"; day 1 at {groups[0][1]:g} mg, then {groups[-1][1]:g} mg as planned."
                                       if len(groups) > 1 else f", each at {groups[0][1]:g} mg as planned.")
        weeks = data_json("estimates.json")["esketamine_induction"]["weeks"]
        period_end = first_service + timedelta(days=7 * weeks - 1)
    else:
        if not sessions:
            raise BillingError("Sessions: a whole number from 1 to 24.")
        groups = [(sessions, dose_mg)]
        schedule = f"{sessions} treatment session{'s' if sessions != 1 else ''}" + (
            f" at about {dose_mg:g} mg each." if dose_mg else ".")
        period_end = None
    diagnoses = active_diagnoses(session, clinic.id, patient.id)[:12]
    codes = [d.code.strip().upper() for d in diagnoses]
    items = _items(session, clinic, modality, groups, minutes, settings, evaluation_code, codes)
    due, why = gfe_due_date(today, first_service, requested)
    content = data_json("estimates.json")
    return {
        "patient": {"name": patient.legal_name, "dob": patient.dob.isoformat()},
        "primary_service": {"description": modality.label, "date": first_service.isoformat(), "schedule": schedule,
                            "period_end": period_end.isoformat() if period_end else ""},
        "items": items, "total_cents": sum(i["amount_cents"] for i in items),
        "diagnoses": [{"code": d.code.strip().upper(), "description": d.description or icd10_description(d.code)}
                      for d in diagnoses],
        "providers": [{"name": provider.display_name, "npi": provider.npi, "tin": clinic.ein,
                       "location": ", ".join([clinic.name] + address(clinic))}],
        "facility": {"name": clinic.name, "npi": clinic.npi, "tin": clinic.ein, "address": address(clinic),
                     "phone": clinic.phone},
        "separately_scheduled": content["separately_scheduled"], "help": content["help"],
        "sessions": sum(n for n, _d in groups), "modality": modality.value, "requested": requested,
        "issued_on": today.isoformat(), "due_date": due.isoformat(), "due_reason": why,
    }


def issue_estimate(session: Session, clinic: Clinic, patient: Patient, data: dict, user_id: int | None,
                   replaces: BillingEstimate | None = None) -> BillingEstimate:
    """Render and store an estimate; ``replaces`` is an earlier one this corrects (voided here)."""
    from plugins.billing.documents import void

    if replaces is not None:
        void(session, clinic.id, "estimate", replaces.id, "replaced by a corrected estimate", user_id)
        data = {**data, "replaces_issued_on": local_date(clinic, replaces.issued_at).isoformat()}
    _html, pdf = render(session, clinic, TEMPLATE, est=data)
    est = BillingEstimate(clinic_id=clinic.id, patient_id=patient.id, total_cents=data["total_cents"],
                          first_service_date=date.fromisoformat(data["primary_service"]["date"]),
                          due_date=date.fromisoformat(data["due_date"]), data=data, pdf=pdf, sha256=sha256(pdf),
                          replaces_id=replaces.id if replaces else None, issued_at=utcnow(), issued_by_id=user_id)
    session.add(est)
    session.flush()
    return est


def void_marked(session: Session, clinic: Clinic, est: BillingEstimate) -> bytes:
    """A voided estimate as issued, marked VOID with its replacement, for staff."""
    mark = voids(session, clinic.id, "estimate", [est.id])[est.id]
    newest = latest_in_chain(session, BillingEstimate, clinic.id, est)
    replacement = (f"the estimate issued {local_date(clinic, newest.issued_at).strftime('%m/%d/%Y')}"
                   if newest.id != est.id else "")
    data = {"help": data_json("estimates.json")["help"], "separately_scheduled": [], **est.data}  # older estimates
    _html, pdf = render(session, clinic, TEMPLATE, est=data, void={
        "date": local_date(clinic, mark.voided_at), "reason": mark.reason, "replacement": replacement,
        "sha256": est.sha256})
    return pdf


def estimate_overruns(session: Session, clinic_id: int, patient_ids: list[int] | None = None) -> dict[int, tuple[BillingEstimate, int]]:
    """patient id -> (latest valid estimate, billed total) where billing exceeds the estimate by $400 or more."""
    from plugins.billing.charges import live_invoice_ids

    q = select(BillingEstimate).where(BillingEstimate.clinic_id == clinic_id)
    if patient_ids is not None:
        q = q.where(BillingEstimate.patient_id.in_(patient_ids or [-1]))
    estimates = list(session.exec(q.order_by(BillingEstimate.issued_at)).all())
    dead = voids(session, clinic_id, "estimate", [e.id for e in estimates])
    latest: dict[int, BillingEstimate] = {}
    for est in estimates:
        if est.id not in dead:
            latest[est.patient_id] = est
    if not latest:
        return {}
    billed = defaultdict(int)
    rows = session.exec(select(BillingCharge.patient_id, BillingCharge.service_date, BillingCharge.amount_cents,
                               BillingCharge.invoice_id).where(
        BillingCharge.clinic_id == clinic_id, BillingCharge.status == "billed",
        BillingCharge.patient_id.in_(list(latest)))).all()
    live = set(live_invoice_ids(session, clinic_id, {r[3] for r in rows}))
    for pid, day, amount, invoice_id in rows:
        if invoice_id in live and day >= latest[pid].first_service_date:
            billed[pid] += amount
    return {pid: (est, billed[pid]) for pid, est in latest.items()
            if billed[pid] - est.total_cents >= GFE_DISPUTE_CENTS}
