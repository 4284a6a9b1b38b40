"""Fills a care-coordination letter from the chart.

Everything here reads the database for one clinic and returns plain values for the letter
template, so the HTML preview and the signed PDF come from exactly the same context. Every
statement about where the patient stands (sessions, the induction series, an item-9 answer and
its review, a medication raised with the prescriber) is worked out here from a record.
Sensitive data (psychotherapy notes, 42 CFR Part 2 records) only enters the context when the
letter asks for it AND an active permission for this recipient covers it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from core import scoring
from core.dosing import dose_text
from core.models import (CareTeamMember, Clinic, ClinicianKind, Diagnosis, Instrument, Medication, OutcomeScore,
                         OutsideClinician, Patient, Provider, Sensitivity, SessionStatus, SideEffect,
                         TreatmentSession, User, VitalPhase, VitalSign, utcnow)
from plugins.coordination import wording
from plugins.coordination.models import CoordinationDocument, CoordinationLetter, CoordinationPermission
from plugins.coordination.wording import is_flagged, kinds, match_rule, shipped_kinds  # noqa: F401 - re-exported

FREE_TEXT = ("opening", "plan", "psychotherapy", "crisis_plan", "requests", "closing", "psychotherapy_note")
FIELD_LIMIT = 4000
UPCOMING = (SessionStatus.scheduled, SessionStatus.checked_in)


def clinic_today(clinic: Clinic) -> date:
    return datetime.now(ZoneInfo(clinic.timezone)).date()


def local_day(clinic: Clinic, moment: datetime | None) -> date | None:
    return moment.astimezone(ZoneInfo(clinic.timezone)).date() if moment else None


def fmt_day(day: date | None) -> str:
    return day.strftime("%b %d, %Y").replace(" 0", " ") if day else ""


def fmt_moment(clinic: Clinic, moment: datetime | None) -> str:
    """A time as the clinic reads it: "Dec 1, 2026 at 9:05 AM PST"."""
    if moment is None:
        return ""
    local = moment.astimezone(ZoneInfo(clinic.timezone))
    clock = local.strftime("%I:%M %p").lstrip("0")
    return f"{fmt_day(local.date())} at {clock} {local.tzname()}"


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


def current_modality(session: Session, clinic: Clinic, patient_id: int) -> str | None:
    """The modality of the patient's latest session (done or booked): what the letter is about."""
    row = session.exec(select(TreatmentSession.modality).where(
        TreatmentSession.clinic_id == clinic.id, TreatmentSession.patient_id == patient_id,
        TreatmentSession.status.not_in([SessionStatus.cancelled, SessionStatus.no_show]))
        .order_by(TreatmentSession.scheduled_at.desc()).limit(1)).first()
    return row.value if row else None


def compose(session: Session, clinic: Clinic, letter: CoordinationLetter, *, spec: dict, settings: dict,
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

    modality = current_modality(session, clinic, patient.id)
    drug = wording.drug_for(modality)
    prescriber = wording.is_prescriber(recipient.kind)
    diagnoses = session.exec(select(Diagnosis).where(
        Diagnosis.clinic_id == clinic.id, Diagnosis.patient_id == patient.id, Diagnosis.resolved_on.is_(None))
        .order_by(Diagnosis.is_primary.desc(), Diagnosis.code)).all()
    all_meds = session.exec(select(Medication).where(
        Medication.clinic_id == clinic.id, Medication.patient_id == patient.id)
        .order_by(Medication.start_date, Medication.id)).all()
    meds = [m for m in all_meds if keep(m.sensitivity)]
    trials = [m for m in meds if m.is_trial]
    raised = _raised_with_prescriber(session, clinic, patient.id)
    current = []
    for m in meds:
        if m.current:
            rule = match_rule(m)
            note = wording.rule_note(rule, drug) if rule else None
            current.append({"med": m, "rule": note, "flagged": bool(note and note["level"] == "concern"),
                            "raised": raised.get(m.id)})
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
        "patient_dob": fmt_day(patient.dob), "recipient": recipient, "drug": drug, "prescriber": prescriber,
        "purpose": wording.fill(spec["purpose"], drug=drug),
        "diagnoses": diagnoses, "trials": trials, "current": current, "flagged": flagged,
        "withheld_meds": len(all_meds) - len(meds),
        "sessions": sessions, "plan": _plan(sessions),
        "course": _course(session, clinic, patient, sessions, wording.induction_size(settings, modality)),
        "scores": scores, "chart": trend_chart(scores), "item9": _item9(session, clinic, phq),
        "response": scoring.response_status(baseline, latest_phq["total"] if latest_phq else None),
        "therapy": therapy, "latest_phq": latest_phq, "fields": fields,
        "next_review": fmt_day(next_review), "signer": signer, "provider": provider,
        "part2_included": allowed.part2 and any(m.sensitivity == Sensitivity.part2 for m in meds),
        "left_out": left_out, "part2_notice": wording.PART2_NOTICE, "part2_cases": wording.PART2_CASES,
        "part2_closing": wording.PART2_CLOSING, "confidentiality": wording.CONFIDENTIALITY,
        "extra_sections": extra_sections or [],
    }
    context["contents"] = describe(context)
    context["missing"] = missing(spec, context)
    return context


def missing(spec: dict, ctx: dict) -> list[str]:
    """What this kind of letter needs before it may be signed, and lacks (shown on the preview)."""
    out = []
    needs = spec.get("needs", [])
    if "plan" in needs and not ctx["fields"].get("plan", "").strip():
        out.append(f"A {spec['label'].lower()} letter needs the plan: write it under \"Treatment plan and schedule\".")
    if "concern" in needs and not ctx["flagged"] and not ctx["fields"].get("requests", "").strip():
        out.append("No current medication is flagged: write the medication question under \"Requested actions\", "
                   "or discard this draft.")
    return out


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


def _course(session: Session, clinic: Clinic, patient: Patient, sessions: list[dict], needed: int) -> dict:
    """Where the series stands, from the discharged sessions and the next one booked."""
    upcoming = session.exec(select(TreatmentSession.scheduled_at).where(
        TreatmentSession.clinic_id == clinic.id, TreatmentSession.patient_id == patient.id,
        TreatmentSession.status.in_(UPCOMING), TreatmentSession.scheduled_at >= utcnow())
        .order_by(TreatmentSession.scheduled_at).limit(1)).first()
    done = len(sessions)
    return {"done": done, "needed": needed, "complete": done >= needed,
            "first": sessions[0]["date"] if sessions else "", "last": sessions[-1]["date"] if sessions else "",
            "completed_on": sessions[needed - 1]["date"] if done >= needed else "",
            "next": fmt_day(local_day(clinic, upcoming))}


def _item9(session: Session, clinic: Clinic, phq: list[dict]) -> list[dict]:
    """Every PHQ-9 item-9 answer above 0, newest first, with who reviewed it and when (or nobody yet)."""
    positive = [s for s in phq if s["item9"]]
    reviewers = {}
    ids = {s["reviewed_by_id"] for s in positive if s["reviewed_by_id"]}
    if ids:
        reviewers = dict(session.exec(select(User.id, User.name).where(User.id.in_(ids))).all())
    return [{**s, "reviewer": reviewers.get(s["reviewed_by_id"], "") if s["reviewed_by_id"] else "",
             "reviewed": fmt_moment(clinic, s["reviewed_at"]) if s["reviewed_by_id"] else ""}
            for s in reversed(positive)]


def _raised_with_prescriber(session: Session, clinic: Clinic, patient_id: int) -> dict[int, dict]:
    """Medication id -> the latest signed letter to a prescriber that flagged it (who, when)."""
    rows = session.exec(select(CoordinationDocument.flagged_medication_ids, CoordinationDocument.signed_at,
                               OutsideClinician.name).join(
        OutsideClinician, OutsideClinician.id == CoordinationDocument.recipient_id).where(
        CoordinationDocument.clinic_id == clinic.id, CoordinationDocument.patient_id == patient_id,
        OutsideClinician.kind.in_(wording.PRESCRIBERS)).order_by(CoordinationDocument.signed_at)).all()
    out = {}
    for ids, signed_at, name in rows:
        for med_id in ids or []:
            out[med_id] = {"name": name, "on": fmt_day(local_day(clinic, signed_at))}
    return out


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
                "day": local_day(clinic, r.taken_at), "reviewed_by_id": r.reviewed_by_id, "reviewed_at": r.reviewed_at}

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
