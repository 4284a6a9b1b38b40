"""The Spravato REMS Patient Monitoring Form: which are due, and each filled from its session.

Every answer comes from a row Glia holds (the session, its vitals and side effects, the
chart's medications, the provider, the clinic, the REMS enrollment). A question the record
cannot answer reads "Not recorded": the form is a clinical statement to the REMS, so a
guess is worse than a gap the clinician fills in. A form is due from discharge until staff
mark it submitted, which stores the exact PDF and CSV; the due date is the treatment date
plus seven days, in the clinic's time zone.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func
from sqlmodel import Session, select

from core.vocab import SEVERITIES, SEXES, SIDE_EFFECTS
from core.models import (Clinic, Medication, Modality, Patient, Provider, SessionStatus, SideEffect,
                         TreatmentSession, User, VitalPhase, VitalSign, utcnow)
from core.rems.enrollment import current_enrollments
from core.rems.models import RemsMonitoringForm

DATA = Path(__file__).resolve().parent.parent / "data"
SPEC = json.loads((DATA / "rems_monitoring_form.json").read_text())
CATEGORIES = json.loads((DATA / "rems_medication_categories.json").read_text())["categories"]
FIELDS = [f for section in SPEC["sections"] for f in section["fields"]]
NOT_RECORDED = SPEC["not_recorded"]
NOT_APPLICABLE = "Not applicable"
DUE_DAYS = SPEC["due_days"]
LABELLED_DOSES = (56, 84)
AE_KEYS = ("sedation", "dissociation", "respiratory_depression")
# a cell starting with one of these is a formula to a spreadsheet: a name such as "=HYPERLINK(...)" must stay text
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class FormChanged(Exception):
    """The session's record changed after the form was reviewed; nothing was stored."""


@dataclass(frozen=True)
class Due:
    treatment: TreatmentSession
    patient: Patient
    treatment_date: date
    due_date: date
    overdue: bool


def clinic_today(clinic: Clinic) -> date:
    return utcnow().astimezone(ZoneInfo(clinic.timezone)).date()


def _local(clinic: Clinic, at: datetime) -> datetime:
    return at.astimezone(ZoneInfo(clinic.timezone))


def treatment_date(clinic: Clinic, t: TreatmentSession) -> date:
    """The clinic-local day of the first device (the start, for sessions recorded before dosing times)."""
    return _local(clinic, t.dosed_at or t.started_at or t.scheduled_at).date()


def due_by(day: date) -> date:
    return day + timedelta(days=DUE_DAYS)


def _is_rems_session():
    return (TreatmentSession.modality == Modality.esketamine_nasal, TreatmentSession.status == SessionStatus.discharged)


def due_forms(session: Session, clinic: Clinic, patient_ids: list[int] | None = None) -> list[Due]:
    """Discharged esketamine sessions without a submitted form, oldest due date first (one query)."""
    stmt = (select(TreatmentSession, Patient)
            .join(Patient, Patient.id == TreatmentSession.patient_id)
            .outerjoin(RemsMonitoringForm, and_(RemsMonitoringForm.treatment_id == TreatmentSession.id,
                                                RemsMonitoringForm.clinic_id == clinic.id))
            .where(TreatmentSession.clinic_id == clinic.id, Patient.clinic_id == clinic.id, *_is_rems_session(),
                   RemsMonitoringForm.id.is_(None))
            .order_by(TreatmentSession.discharged_at, TreatmentSession.id))
    if patient_ids is not None:
        stmt = stmt.where(TreatmentSession.patient_id.in_(patient_ids))
    today = clinic_today(clinic)
    due = []
    for t, patient in session.exec(stmt).all():
        day = treatment_date(clinic, t)
        by = due_by(day)
        due.append(Due(t, patient, day, by, today > by))
    return sorted(due, key=lambda d: (d.due_date, d.treatment.id))


def submitted_forms(session: Session, clinic: Clinic, *, patient_ids: list[int] | None = None, limit: int = 100):
    """(form, session, patient) for the latest submitted forms; the PDF bytes are not loaded."""
    stmt = (select(RemsMonitoringForm.id, RemsMonitoringForm.treatment_id, RemsMonitoringForm.submitted_at,
                   RemsMonitoringForm.submitted_by_id, RemsMonitoringForm.reference, TreatmentSession, Patient)
            .join(TreatmentSession, TreatmentSession.id == RemsMonitoringForm.treatment_id)
            .join(Patient, Patient.id == RemsMonitoringForm.patient_id)
            .where(RemsMonitoringForm.clinic_id == clinic.id, TreatmentSession.clinic_id == clinic.id,
                   Patient.clinic_id == clinic.id)
            .order_by(RemsMonitoringForm.submitted_at.desc(), RemsMonitoringForm.id.desc()).limit(limit))
    if patient_ids is not None:
        stmt = stmt.where(RemsMonitoringForm.patient_id.in_(patient_ids))
    return session.exec(stmt).all()


def submitted_form(session: Session, clinic: Clinic, treatment_id: int) -> RemsMonitoringForm | None:
    return session.exec(select(RemsMonitoringForm).where(RemsMonitoringForm.clinic_id == clinic.id,
                                                         RemsMonitoringForm.treatment_id == treatment_id)).first()


# -- filling the form ---------------------------------------------------------------------------

def _yes_no(value: bool) -> str:
    return "Yes" if value else "No"


def _taking_on(m: Medication, day: date) -> bool:
    """Charted as taken on the treatment day (a past trial is history, not a concomitant medication)."""
    return (not m.is_trial and (m.start_date is None or m.start_date <= day)
            and (m.stop_date is None or m.stop_date >= day))


def _in_category(m: Medication, category: dict) -> bool:
    name = m.name.lower()
    return m.drug_class in category["classes"] or any(n in name for n in category["names"])


def _medication_answers(meds: list[Medication], day: date) -> dict[str, str]:
    """Yes (with the medications) or No from the chart; Not recorded when the chart lists no medications at all."""
    if not meds:
        return {c["key"]: NOT_RECORDED for c in CATEGORIES}
    taking = [m for m in meds if _taking_on(m, day)]
    answers = {}
    for category in CATEGORIES:
        found = sorted({m.name for m in taking if _in_category(m, category)})
        answers[category["key"]] = f"Yes ({', '.join(found)})" if found else "No"
    return answers


def _bp(clinic: Clinic, vital: VitalSign | None) -> str:
    if vital is None:
        return NOT_RECORDED
    at = _local(clinic, vital.taken_at).strftime("%I:%M %p").lstrip("0")
    return f"{vital.systolic}/{vital.diastolic} mmHg at {at}"


def _baseline_acceptable(baseline: VitalSign | None, threshold: tuple[int, int] | None) -> str:
    """Yes when the reading was within the clinic's blood-pressure threshold; otherwise the record does not say.

    A reading above the threshold may have been accepted by a clinician (the consent plugin's
    acknowledgement), but that judgement is not core's to restate, so it reads Not recorded.
    """
    if baseline is None or threshold is None:
        return NOT_RECORDED
    within = baseline.systolic <= threshold[0] and baseline.diastolic <= threshold[1]
    return "Yes" if within else NOT_RECORDED


def _resolution(rows: list[SideEffect]) -> str:
    if not rows:
        return NOT_APPLICABLE
    if any(r.resolved is None for r in rows):
        return NOT_RECORDED
    return _yes_no(all(r.resolved for r in rows))


def _effect_answers(effects: list[SideEffect]) -> dict[str, str]:
    answers = {}
    for key in AE_KEYS:
        rows = [e for e in effects if e.effect == key]
        worst = max((e.severity for e in rows), key=lambda s: SEVERITIES.index(s) if s in SEVERITIES else -1,
                    default="")
        answers[key] = f"Yes ({worst})" if rows else "No"
        answers[f"{key}_resolved"] = _resolution(rows)
    others = []
    for e in effects:
        if e.effect in AE_KEYS:
            continue
        resolved = {True: ", resolved", False: ", not resolved"}.get(e.resolved, ", resolution not recorded")
        others.append(f"{SIDE_EFFECTS.get(e.effect, e.effect)} ({e.severity}{resolved})")
    answers["other_adverse_events"] = "; ".join(others) if others else "None"
    return answers


def _dose(t: TreatmentSession) -> dict[str, str]:
    if t.dose_mg is None:
        return {"dose": NOT_RECORDED, "dose_other": NOT_RECORDED}
    if t.dose_mg in LABELLED_DOSES:
        return {"dose": f"{t.dose_mg:g} mg", "dose_other": NOT_APPLICABLE}
    return {"dose": "Other", "dose_other": f"{t.dose_mg:g}"}


def _address(clinic: Clinic) -> str:
    if not clinic.address_line1:
        return NOT_RECORDED
    place = " ".join(p for p in (clinic.state, clinic.postal_code) if p)
    return ", ".join(p for p in (clinic.address_line1, clinic.address_line2, clinic.city, place) if p)


def _bp_threshold(session: Session, clinic: Clinic) -> tuple[int, int] | None:
    """The clinic's check-in blood-pressure limit, as the consent plugin's settings hold it (if loaded)."""
    from core.plugin_state import settings_for

    values = settings_for(session, clinic, "consent")
    try:
        return int(values["bp_systolic_max"]), int(values["bp_diastolic_max"])
    except (KeyError, TypeError, ValueError):
        return None


def fill(session: Session, clinic: Clinic, pairs: list[tuple[TreatmentSession, Patient]]) -> dict[int, dict[str, str]]:
    """The form's answers per session id, in FIELDS order, for many sessions in a fixed number of queries."""
    if not pairs:
        return {}
    ids = [t.id for t, _p in pairs]
    pids = sorted({p.id for _t, p in pairs})
    vitals: dict[tuple[int, VitalPhase], VitalSign] = {}
    for v in session.exec(select(VitalSign).where(VitalSign.clinic_id == clinic.id, VitalSign.treatment_id.in_(ids))
                          .order_by(VitalSign.taken_at, VitalSign.id)).all():
        vitals[(v.treatment_id, v.phase)] = v  # the latest reading of each phase wins
    effects: dict[int, list[SideEffect]] = {}
    for e in session.exec(select(SideEffect).where(SideEffect.clinic_id == clinic.id, SideEffect.treatment_id.in_(ids))
                          .order_by(SideEffect.recorded_at, SideEffect.id)).all():
        effects.setdefault(e.treatment_id, []).append(e)
    meds: dict[int, list[Medication]] = {}
    for m in session.exec(select(Medication).where(Medication.clinic_id == clinic.id, Medication.patient_id.in_(pids))
                          .order_by(Medication.name, Medication.id)).all():
        meds.setdefault(m.patient_id, []).append(m)
    enrollments = current_enrollments(session, clinic.id, pids)
    first_discharge = dict(session.exec(
        select(TreatmentSession.patient_id, func.min(TreatmentSession.discharged_at))
        .where(TreatmentSession.clinic_id == clinic.id, TreatmentSession.patient_id.in_(pids), *_is_rems_session())
        .group_by(TreatmentSession.patient_id)).all())
    providers = {p.id: p for p in session.exec(select(Provider).where(
        Provider.clinic_id == clinic.id, Provider.id.in_({t.provider_id for t, _p in pairs}))).all()}
    user_ids = {p.user_id for p in providers.values() if p.user_id}
    emails = dict(session.exec(select(User.id, User.email).where(User.id.in_(user_ids))).all()) if user_ids else {}
    threshold = _bp_threshold(session, clinic)

    out = {}
    for t, patient in pairs:
        day = treatment_date(clinic, t)
        enrollment = enrollments.get(patient.id)
        first = first_discharge.get(patient.id) is not None and t.discharged_at == first_discharge[patient.id]
        if not first:
            enrolled = NOT_APPLICABLE
        elif enrollment is None:
            enrolled = NOT_RECORDED
        else:
            enrolled = _yes_no(enrollment.enrolled_on <= day)
        provider = providers.get(t.provider_id)
        minutes = (NOT_RECORDED if t.dosed_at is None or t.discharged_at is None
                   else str(int((t.discharged_at - t.dosed_at).total_seconds() // 60)))
        values = {
            "patient_first_name": patient.legal_first_name,
            "patient_middle_initial": "",  # Glia keeps no middle name
            "patient_last_name": patient.legal_last_name,
            "patient_dob": patient.dob.strftime("%m/%d/%Y"),
            "patient_sex": SEXES[patient.sex] if patient.sex in SEXES and patient.sex != "U" else NOT_RECORDED,
            "patient_rems_id": enrollment.enrollment_id if enrollment else NOT_RECORDED,
            "first_treatment": _yes_no(first),
            "enrolled": enrolled,
            **_medication_answers(meds.get(patient.id, []), day),
            "provider_name": provider.display_name if provider else NOT_RECORDED,
            "provider_phone": clinic.phone or NOT_RECORDED,
            "provider_email": emails.get(provider.user_id) if provider and provider.user_id in emails else NOT_RECORDED,
            "setting_name": clinic.name,
            "setting_address": _address(clinic),
            "setting_rems_id": clinic.rems_setting_id or NOT_RECORDED,
            "treatment_date": day.strftime("%m/%d/%Y"),
            **_dose(t),
            "lot_number": t.lot_number or NOT_RECORDED,
            "minutes_monitored": minutes,
            "ready_minutes": NOT_RECORDED if t.ready_minutes is None else str(t.ready_minutes),
            "vitals_ok_before": _baseline_acceptable(vitals.get((t.id, VitalPhase.baseline)), threshold),
            "vitals_ok_completion": "Yes" if t.discharge_ready_by_id else NOT_RECORDED,
            "bp_before": _bp(clinic, vitals.get((t.id, VitalPhase.baseline))),
            "bp_40_min": _bp(clinic, vitals.get((t.id, VitalPhase.post_dose))),
            "bp_completion": _bp(clinic, vitals.get((t.id, VitalPhase.discharge))),
            **_effect_answers(effects.get(t.id, [])),
        }
        out[t.id] = {f["key"]: values[f["key"]] for f in FIELDS}
    return out


# -- the files ----------------------------------------------------------------------------------

def _cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_START) else value


def csv_text(rows: list[dict[str, str]]) -> str:
    """One header row of the REMS field names, then one row per form."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([f["label"] for f in FIELDS])
    for values in rows:
        writer.writerow([_cell(values[f["key"]]) for f in FIELDS])
    return buf.getvalue()


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def fingerprint(values: dict[str, str]) -> str:
    """What the reviewer saw: submitting checks the record still gives the same answers."""
    return sha256(csv_text([values]))


def pdf(clinic: Clinic, t: TreatmentSession, values: dict[str, str]) -> bytes:
    from core.pdf import render_pdf_template

    day = datetime.strptime(values["treatment_date"], "%m/%d/%Y").date()
    _html, data = render_pdf_template("rems/monitoring_form_pdf.html", clinic=clinic, spec=SPEC, values=values,
                                      not_recorded=NOT_RECORDED, treatment=t,
                                      due_date=due_by(day),
                                      prepared=_local(clinic, utcnow()).strftime("%m/%d/%Y %I:%M %p"))
    return data


def submit(session: Session, clinic: Clinic, t: TreatmentSession, patient: Patient, user, *,
           seen: str, reference: str) -> RemsMonitoringForm:
    """Store the form exactly as it stands now, if it is what the reviewer saw (``seen``: its fingerprint)."""
    values = fill(session, clinic, [(t, patient)])[t.id]
    text = csv_text([values])
    if sha256(text) != seen:
        raise FormChanged("The session's record changed after this form was shown, so its answers differ from "
                          "what you reviewed. Nothing was saved; review the form again before marking it submitted.")
    data = pdf(clinic, t, values)
    row = RemsMonitoringForm(clinic_id=clinic.id, treatment_id=t.id, patient_id=patient.id, pdf=data,
                             pdf_sha256=sha256(data), csv=text, csv_sha256=sha256(text), reference=reference,
                             submitted_by_id=user.id, submitted_at=utcnow())
    session.add(row)
    session.flush()
    return row
