"""Fills a care-coordination letter from the chart.

Everything here reads the database for one clinic and returns plain values for the letter
template, so the HTML preview and the signed PDF come from exactly the same context.
Sensitive data (psychotherapy notes, 42 CFR Part 2 records) only enters the context when the
letter asks for it AND an active permission for this recipient covers it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from core import scoring
from core.dosing import dose_text
from core.models import (CareTeamMember, Clinic, ClinicianKind, Diagnosis, Instrument, Medication,
                         OutcomeScore, OutsideClinician, Patient, Provider, Sensitivity, SessionStatus,
                         SideEffect, TreatmentSession, User, VitalPhase, VitalSign)
from plugins.coordination.models import CoordinationLetter, CoordinationPermission

DATA = Path(__file__).resolve().parent / "data"
FREE_TEXT = ("opening", "plan", "psychotherapy", "crisis_plan", "requests", "closing", "psychotherapy_note")
FIELD_LIMIT = 4000
SCHEDULES = {
    "iv_ketamine": "Induction: 6 IV infusions over 2-3 weeks, then maintenance infusions as needed.",
    "im_ketamine": "Induction: 6 IM sessions over 2-3 weeks, then maintenance as needed.",
    "esketamine_nasal": "Induction: twice weekly for 4 weeks, weekly in weeks 5-8, then weekly or every 2 weeks "
                        "(REMS: 2 hours of observation after each dose).",
    "sublingual": "Induction: supervised sublingual sessions as planned with the prescriber.",
}
PART2_NOTICE = (
    "This record which has been disclosed to you is protected by federal confidentiality rules (42 CFR part 2). "
    "These rules prohibit you from using or disclosing this record, or testimony that describes the information "
    "contained in this record, in any civil, criminal, administrative, or legislative proceedings against the "
    "patient, unless authorized by the consent of the patient, except as provided at 42 CFR 2.12(c)(5) or as "
    "authorized by a court in accordance with 42 CFR 2.64 or 2.65. In addition, the federal rules prohibit you "
    "from making any other use or disclosure of this record unless at least one of the following applies: "
    "further use or disclosure is expressly permitted by the written consent of the individual whose information "
    "is being disclosed in this record or as otherwise permitted by 42 CFR part 2. A general authorization for "
    "the release of medical or other information is NOT sufficient for this purpose (42 CFR 2.31).")
CONFIDENTIALITY = (
    "Confidential health information, shared with you for the patient's treatment (45 CFR 164.506(c)). "
    "If you received this letter in error, please tell us and destroy it.")


@lru_cache(maxsize=1)
def rules() -> tuple[dict, ...]:
    return tuple(json.loads((DATA / "interaction_rules.json").read_text(encoding="utf-8"))["rules"])


@lru_cache(maxsize=1)
def shipped_kinds() -> dict:
    return json.loads((DATA / "letter_kinds.json").read_text(encoding="utf-8"))["kinds"]


def kinds(settings: dict) -> dict:
    """The shipped letter kinds with the clinic's saved wording laid over them."""
    overrides = settings.get("letter_overrides") or {}
    return {key: {**spec, **{k: v for k, v in (overrides.get(key) or {}).items() if k in spec and v}}
            for key, spec in shipped_kinds().items()}


def match_rule(med: Medication) -> dict | None:
    """The first rule whose drug class or one of whose names fits this medication."""
    cls = (med.drug_class or "").strip().lower()
    name = (med.name or "").lower()
    for rule in rules():
        if cls and cls in rule["classes"]:
            return rule
        if any(n in name for n in rule["names"]):
            return rule
    return None


def is_flagged(med: Medication) -> bool:
    rule = match_rule(med)
    return rule is not None and rule["level"] == "concern"


def clinic_today(clinic: Clinic) -> date:
    return datetime.now(ZoneInfo(clinic.timezone)).date()


def local_day(clinic: Clinic, moment: datetime | None) -> date | None:
    return moment.astimezone(ZoneInfo(clinic.timezone)).date() if moment else None


def fmt_day(day: date | None) -> str:
    return day.strftime("%b %d, %Y").replace(" 0", " ") if day else ""


def active_permissions(session: Session, clinic: Clinic, patient_id: int, recipient_id: int,
                       today: date) -> list[CoordinationPermission]:
    rows = session.exec(select(CoordinationPermission).where(
        CoordinationPermission.clinic_id == clinic.id, CoordinationPermission.patient_id == patient_id,
        CoordinationPermission.recipient_id == recipient_id)).all()
    return [p for p in rows if p.active_on(today)]


@dataclass
class Allowed:
    """Which sensitive categories this letter may carry, and why others are left out."""

    psychotherapy_notes: bool = False
    part2: bool = False
    left_out: list[str] = field(default_factory=list)

    def permits(self, sensitivity: Sensitivity) -> bool:
        return (sensitivity == Sensitivity.general
                or (sensitivity == Sensitivity.psychotherapy_note and self.psychotherapy_notes)
                or (sensitivity == Sensitivity.part2 and self.part2))


def allowed_for(letter: CoordinationLetter, permissions: list[CoordinationPermission]) -> Allowed:
    return Allowed(
        psychotherapy_notes=letter.include_psychotherapy_notes and any(p.covers_psychotherapy_notes for p in permissions),
        part2=letter.include_part2 and any(p.covers_part2 for p in permissions))


def default_fields(spec: dict, patient: Patient, latest_modality: str | None) -> dict:
    return {"opening": spec["opening"], "plan": SCHEDULES.get(latest_modality or "", ""),
            "psychotherapy": "", "crisis_plan": "", "requests": spec["requests"], "closing": spec["closing"],
            "psychotherapy_note": "", "next_review": ""}


def compose(session: Session, clinic: Clinic, letter: CoordinationLetter, *, spec: dict,
            signer: User | None, extra_sections: list | None = None) -> dict:
    """The whole letter as template context."""
    patient = session.exec(select(Patient).where(Patient.id == letter.patient_id,
                                                 Patient.clinic_id == clinic.id)).one()
    recipient = session.exec(select(OutsideClinician).where(OutsideClinician.id == letter.recipient_id,
                                                            OutsideClinician.clinic_id == clinic.id)).one()
    today = clinic_today(clinic)
    allowed = allowed_for(letter, active_permissions(session, clinic, patient.id, recipient.id, today))
    left_out: dict[str, int] = {}

    def keep(sensitivity: Sensitivity) -> bool:
        if allowed.permits(sensitivity):
            return True
        left_out[sensitivity.value] = left_out.get(sensitivity.value, 0) + 1
        return False

    diagnoses = session.exec(select(Diagnosis).where(
        Diagnosis.clinic_id == clinic.id, Diagnosis.patient_id == patient.id, Diagnosis.resolved_on.is_(None))
        .order_by(Diagnosis.is_primary.desc(), Diagnosis.code)).all()
    meds = session.exec(select(Medication).where(
        Medication.clinic_id == clinic.id, Medication.patient_id == patient.id)
        .order_by(Medication.start_date, Medication.id)).all()
    meds = [m for m in meds if keep(m.sensitivity)]
    trials = [m for m in meds if m.is_trial]
    current = []
    for m in meds:
        if m.current:
            rule = match_rule(m)
            current.append({"med": m, "rule": rule, "flagged": bool(rule and rule["level"] == "concern")})
    flagged = [c for c in current if c["flagged"]]

    sessions = _sessions(session, clinic, patient)
    scores = _scores(session, clinic, patient)
    therapy = session.exec(select(CareTeamMember, OutsideClinician).join(
        OutsideClinician, OutsideClinician.id == CareTeamMember.clinician_id).where(
        CareTeamMember.clinic_id == clinic.id, CareTeamMember.patient_id == patient.id,
        CareTeamMember.role == ClinicianKind.therapist)).all()
    phq = scores["phq9"]
    latest_phq = phq[-1] if phq else None
    provider = None
    if signer is not None:
        provider = session.exec(select(Provider).where(Provider.clinic_id == clinic.id,
                                                       Provider.user_id == signer.id)).first()
    fields = {**{k: "" for k in FREE_TEXT}, **(letter.fields or {})}
    if not allowed.psychotherapy_notes:
        if fields.get("psychotherapy_note"):
            left_out["psychotherapy_note"] = left_out.get("psychotherapy_note", 0) + 1
        fields["psychotherapy_note"] = ""
    next_review = None
    if fields.get("next_review"):
        try:
            next_review = date.fromisoformat(fields["next_review"])
        except ValueError:
            next_review = None
    baseline = phq[0]["total"] if phq else None
    context = {
        "clinic": clinic, "letter": letter, "spec": spec, "today": fmt_day(today), "patient": patient,
        "patient_dob": fmt_day(patient.dob), "recipient": recipient,
        "diagnoses": diagnoses, "trials": trials, "current": current, "flagged": flagged,
        "sessions": sessions, "plan": _plan(sessions),
        "scores": scores, "chart": trend_chart(scores),
        "response": scoring.response_status(baseline, latest_phq["total"] if latest_phq else None),
        "therapy": therapy, "latest_phq": latest_phq, "fields": fields,
        "next_review": fmt_day(next_review), "signer": signer, "provider": provider,
        "part2_included": allowed.part2 and any(m.sensitivity == Sensitivity.part2 for m in meds),
        "left_out": left_out, "part2_notice": PART2_NOTICE, "confidentiality": CONFIDENTIALITY,
        "extra_sections": extra_sections or [],
    }
    context["contents"] = describe(context)
    return context


def describe(ctx: dict) -> str:
    """What the letter discloses, by section name only (no PHI values): the disclosure log's text."""
    parts = [ctx["spec"]["label"], "diagnoses", "treatment history", "treatment plan",
             f"{len(ctx['sessions'])} sessions", "PHQ-9/GAD-7 trend", "current medications"]
    if ctx["flagged"]:
        parts.append(f"{len(ctx['flagged'])} medication concern(s)")
    parts += ["psychotherapy", "safety", "requested actions"]
    if ctx["fields"].get("psychotherapy_note"):
        parts.append("psychotherapy note (authorized)")
    if ctx["part2_included"]:
        parts.append("42 CFR Part 2 records (authorized, with re-disclosure notice)")
    parts += [s.title for s in ctx["extra_sections"]]
    return "; ".join(parts)[:1000]


def _sessions(session: Session, clinic: Clinic, patient: Patient) -> list[dict]:
    rows = session.exec(select(TreatmentSession).where(
        TreatmentSession.clinic_id == clinic.id, TreatmentSession.patient_id == patient.id,
        TreatmentSession.status == SessionStatus.discharged).order_by(TreatmentSession.started_at)).all()
    ids = [t.id for t in rows]
    effects: dict[int, list[SideEffect]] = {}
    peaks: dict[int, VitalSign] = {}
    if ids:
        for e in session.exec(select(SideEffect).where(SideEffect.clinic_id == clinic.id,
                                                       SideEffect.treatment_id.in_(ids))).all():
            effects.setdefault(e.treatment_id, []).append(e)
        for v in session.exec(select(VitalSign).where(VitalSign.clinic_id == clinic.id, VitalSign.treatment_id.in_(ids),
                                                      VitalSign.phase == VitalPhase.post_dose)).all():
            if v.treatment_id not in peaks or v.systolic > peaks[v.treatment_id].systolic:
                peaks[v.treatment_id] = v
    out = []
    for t in rows:
        fx = sorted(effects.get(t.id, []), key=lambda e: e.effect)
        bad = [e for e in fx if e.severity in ("moderate", "severe")]
        out.append({
            "date": fmt_day(local_day(clinic, t.started_at or t.scheduled_at)), "modality": t.modality.label,
            "modality_key": t.modality.value, "dose": dose_text(t),
            "tolerability": "well tolerated" if not bad else "tolerated with " + ", ".join(
                f"{e.severity} {e.effect.replace('_', ' ')}" for e in bad),
            "side_effects": ", ".join(f"{e.effect.replace('_', ' ')} ({e.severity})" for e in fx) or "none",
            "peak_bp": f"{peaks[t.id].systolic}/{peaks[t.id].diastolic}" if t.id in peaks else "",
        })
    return out


def _plan(sessions: list[dict]) -> dict:
    last = sessions[-1] if sessions else None
    return {"modality": last["modality"] if last else "", "modality_key": last["modality_key"] if last else "",
            "dose": last["dose"] if last else "", "count": len(sessions)}


def _scores(session: Session, clinic: Clinic, patient: Patient) -> dict:
    rows = session.exec(select(OutcomeScore).where(
        OutcomeScore.clinic_id == clinic.id, OutcomeScore.patient_id == patient.id)
        .order_by(OutcomeScore.taken_at, OutcomeScore.id)).all()
    phq = [r for r in rows if r.instrument == Instrument.phq9]
    gad = [r for r in rows if r.instrument == Instrument.gad7]

    def pack(r):
        return {"date": fmt_day(local_day(clinic, r.taken_at)), "total": r.total, "band": r.band, "item9": r.item9,
                "day": local_day(clinic, r.taken_at)}

    return {"phq9": [pack(r) for r in phq], "gad7": [pack(r) for r in gad]}


def trend_rows(scores: dict) -> list[dict]:
    """One row per date with both instruments, for the trend table."""
    by_day: dict[date, dict] = {}
    for key in ("phq9", "gad7"):
        for s in scores[key]:
            row = by_day.setdefault(s["day"], {"date": s["date"], "phq9": "", "gad7": "", "item9": ""})
            row[key] = s["total"]
            if key == "phq9" and s["item9"] is not None:
                row["item9"] = s["item9"]
    return [by_day[d] for d in sorted(by_day)]


def trend_chart(scores: dict, width: int = 520, height: int = 190) -> dict:
    """Coordinates for an SVG line chart of both scores (0-27 scale); numbers only, no markup."""
    left, right, top, bottom = 34, 12, 12, 28
    days = sorted({s["day"] for key in ("phq9", "gad7") for s in scores[key]})
    span = max((days[-1] - days[0]).days, 1) if days else 1
    plot_w, plot_h = width - left - right, height - top - bottom

    def xy(day, value):
        x = left + (plot_w * ((day - days[0]).days / span) if len(days) > 1 else plot_w / 2)
        return round(x, 1), round(top + plot_h * (1 - value / 27), 1)

    series = []
    for key, label, css in (("phq9", "PHQ-9", "#2f6f73"), ("gad7", "GAD-7", "#b26a00")):
        pts = [xy(s["day"], s["total"]) for s in scores[key]]
        series.append({"label": label, "color": css, "points": " ".join(f"{x},{y}" for x, y in pts),
                       "dots": pts})
    grid = [{"value": v, "y": round(top + plot_h * (1 - v / 27), 1)} for v in (0, 5, 10, 15, 20, 27)]
    ticks = []
    if days:
        ends = ((days[0], "start"), (days[-1], "end")) if len(days) > 1 else ((days[0], "middle"),)
        for day, anchor in ends:
            x, _ = xy(day, 0)
            ticks.append({"x": x, "anchor": anchor, "label": day.strftime("%b %d").replace(" 0", " ")})
    return {"width": width, "height": height, "left": left, "right": width - right, "top": top,
            "bottom": height - bottom, "series": series, "grid": grid, "ticks": ticks, "empty": not days,
            "rows": trend_rows(scores)}
