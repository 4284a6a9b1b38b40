"""A treatment session from check-in to discharge.

Each step is one POST carrying the session's version; core.workflow refuses a stale or
repeated form and any backward step with HTTP 409, writing nothing. Starting is refused
while any check (core's own, or a plugin's treatment_blockers) stands in the way.
"""
from __future__ import annotations

from datetime import timedelta, timezone
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for
from flask_login import current_user
from sqlmodel import select

from core import audit, confirm, dosing, hooks, mail, workflow
from core.auth import staff
from core.db import get_session
from core.formatting import label, local, local_time
from core.clock import local_datetime
from core.vocab import SEVERITIES, SIDE_EFFECTS
from core.models import (Modality, Patient, Provider, SessionStatus, SideEffect, TreatmentSession, User, VitalPhase,
                         VitalSign, utcnow)
from core.plugin_state import gates_off
from core.views.patients import CHARTING_ROLES, is_clinical
from core.views.session_forms import BaselineForm, CheckInForm, EndForm, MonitorForm, StepForm, discharge_form
from core.slots import Panel
from core.web import after_commit

bp = Blueprint("sessions", __name__, url_prefix="/sessions")
bp.record_once(lambda _state: dosing.defaults())  # unreadable dose limits stop startup: never dose without them
bp.add_app_template_filter(dosing.dose_text, "dose_text")
bp.add_app_template_filter(dosing.observed_minutes, "observed_minutes")
S = SessionStatus
ESKETAMINE = Modality.esketamine_nasal


def _load(session_id: int, *, for_update: bool = False) -> tuple[TreatmentSession, Patient]:
    """The session and its patient, both within the current clinic; otherwise 404 and an audit row."""
    db = get_session()
    t = workflow.lock(db, g.clinic.id, session_id) if for_update else db.exec(
        select(TreatmentSession).where(TreatmentSession.id == session_id,
                                       TreatmentSession.clinic_id == g.clinic.id)).first()
    patient = db.exec(select(Patient).where(Patient.id == t.patient_id, Patient.clinic_id == g.clinic.id)).first() if t else None
    if t is None or patient is None:
        audit.record_denied("session.access", object_type="treatment_session", object_id=session_id)
        abort(404)
    return t, patient


def _context(t: TreatmentSession, patient: Patient) -> dict:
    db = get_session()
    vitals_rows = db.exec(select(VitalSign).where(VitalSign.clinic_id == g.clinic.id, VitalSign.treatment_id == t.id)
                          .order_by(VitalSign.taken_at, VitalSign.id)).all()
    effects = db.exec(select(SideEffect).where(SideEffect.clinic_id == g.clinic.id, SideEffect.treatment_id == t.id)
                      .order_by(SideEffect.recorded_at, SideEffect.id)).all()
    provider = db.exec(select(Provider).where(Provider.id == t.provider_id, Provider.clinic_id == g.clinic.id)).first()
    limits = dosing.limits_for(db, g.clinic.id, t.modality)
    signed_by = [i for i in (t.dose_override_by_id, t.discharge_ready_by_id) if i]
    people = dict(db.exec(select(User.id, User.name).where(User.id.in_(signed_by))).all()) if signed_by else {}
    reasons = []
    if t.status in (S.scheduled, S.checked_in) and is_clinical(current_user):
        reasons = workflow.start_reasons(db, g.clinic, patient, t, vitals_url="#vitals")
    panels, plugin_errors = hooks.relay(g.clinic).collect("session_panels", expect=Panel, clinic=g.clinic,
                                                          patient=patient, treatment=t, user=current_user)
    return {"t": t, "patient": patient, "provider": provider, "vitals": vitals_rows,
            "by_phase": {v.phase.value: v for v in vitals_rows}, "effects": effects, "reasons": reasons,
            "clinical": is_clinical(current_user), "charting": current_user.role.value in CHARTING_ROLES,
            "side_effects": SIDE_EFFECTS, "severity_options": [(s, s.capitalize()) for s in SEVERITIES], "errors": {}, "values": {}, "S": S,
            "limits": limits, "people": people, "clock": _clock(t, limits) if t.status == S.monitoring else None,
            "first_of_course": t.status == S.in_progress and bool(limits.first_dose) and dosing.first_of_course(db, t),
            "panels": hooks.ordered(panels), "plugin_errors": plugin_errors, "gates_off": gates_off(db, g.clinic)}


def _render(t, patient, *, status=200, **extra):
    ctx = _context(t, patient)
    ctx.update(extra)
    return render_template("sessions/detail.html", **ctx), status


def _conflict(t, patient, exc: workflow.Conflict):
    get_session().rollback()  # nothing from this request is kept
    t, patient = _load(t.id)
    return _render(t, patient, status=409, conflict=str(exc))


@bp.get("/<int:session_id>")
@staff()
def detail(session_id: int):
    t, patient = _load(session_id)
    audit.record("session.view", object_type="treatment_session", object_id=t.id, patient_id=patient.id)
    return _render(t, patient)


def _add_vitals(t: TreatmentSession, phase: VitalPhase, values: dict) -> None:
    get_session().add(VitalSign(clinic_id=g.clinic.id, treatment_id=t.id, phase=phase, taken_at=utcnow(), **values))


@bp.post("/<int:session_id>/check-in")
@staff()
def check_in(session_id: int):
    """Arrival: the escort is confirmed; baseline vitals may be taken now or before the start."""
    t, patient = _load(session_id, for_update=True)
    form = CheckInForm()
    ok = form.validate()
    baseline = form.baseline.form.reading
    try:
        workflow.require(t, S.checked_in, form.version.data)
    except workflow.Conflict as exc:
        return _conflict(t, patient, exc)
    if not ok:
        return _render(t, patient, status=422, errors=form.messages, values=form.values)
    workflow.move(get_session(), t, S.checked_in, form.version.data, escort_name=form.escort_name.data,
                  escort_phone=form.escort_phone.data, escort_confirmed=True)
    if baseline:
        _add_vitals(t, VitalPhase.baseline, baseline)
    audit.record("session.check_in", object_type="treatment_session", object_id=t.id, patient_id=patient.id)
    flash("Checked in." + ("" if baseline else " Baseline vitals are still needed before the session can start."))
    return redirect(url_for("sessions.detail", session_id=t.id))


@bp.post("/<int:session_id>/vitals")
@staff()
def record_baseline(session_id: int):
    """Baseline vitals after check-in: the first reading, or a re-check (the gate reads the latest)."""
    t, patient = _load(session_id, for_update=True)
    form = BaselineForm()
    ok = form.validate()
    try:
        workflow.check_version(t, form.version.data)
        if t.status != S.checked_in:
            raise workflow.Conflict("Baseline vitals are recorded after check-in and before the start. Nothing was saved.")
    except workflow.Conflict as exc:
        return _conflict(t, patient, exc)
    if not ok:
        return _render(t, patient, status=422, errors=form.messages, values=form.values)
    _add_vitals(t, VitalPhase.baseline, form.baseline.form.reading)
    t.version += 1
    get_session().add(t)
    audit.record("session.vitals", object_type="treatment_session", object_id=t.id, patient_id=patient.id,
                 detail="baseline")
    flash("Baseline vitals recorded. The latest reading is the one the pre-treatment checks use.")
    return redirect(url_for("sessions.detail", session_id=t.id))


@bp.post("/<int:session_id>/start")
@staff(*CHARTING_ROLES)
def start(session_id: int):
    t, patient = _load(session_id, for_update=True)
    try:
        workflow.start(get_session(), t, StepForm().version.data, vitals_url="#vitals")
    except workflow.Conflict as exc:
        return _conflict(t, patient, exc)
    except workflow.Blocked as exc:
        t, patient = _load(session_id)
        return render_template("sessions/blocked.html", t=t, patient=patient, reasons=exc.reasons,
                               gates_off=gates_off(get_session(), g.clinic)), 409
    flash("Session started. Record post-dose vitals at about 40 minutes.")
    return redirect(url_for("sessions.detail", session_id=t.id))


@bp.post("/<int:session_id>/monitor")
@staff(*CHARTING_ROLES)
def monitor(session_id: int):
    """Dosing done: the dose checked against the clinic's limits, when dosing began (the
    observation clock starts there), vitals about 40 minutes after dosing, side effects."""
    t, patient = _load(session_id, for_update=True)
    db = get_session()
    form = MonitorForm(lot_required=t.modality == ESKETAMINE)
    limits = dosing.limits_for(db, g.clinic.id, t.modality)
    form.validate()  # the checks below add to the fields' messages; any message refuses the form
    dose, weight = form.dose_mg.number, form.weight_kg.number
    if weight is None and not form.weight_kg.errors:
        weight = t.weight_kg
    dosed_at = _dosed_at(form, t)
    reason = form.override_reason.data
    review = None
    if not form.weight_kg.errors:
        first = bool(limits.first_dose) and dosing.first_of_course(db, t)
        review = dosing.check_dose(limits, dose, weight, first_of_course=first)
        for name, message in review.refusals.items():
            form[name].errors = [message]
        if review.needs_override and not review.refusals and not reason:
            form.override_reason.errors.append("This dose needs a clinician's written override: "
                                               + " ".join(review.overrides) + " Give the reason, or correct the dose.")
    try:
        workflow.require(t, S.monitoring, form.version.data)
    except workflow.Conflict as exc:
        return _conflict(t, patient, exc)
    if form.messages:
        return _render(t, patient, status=422, errors=form.messages, values=form.values, review=review)
    override = review.needs_override
    effects = form.effects
    workflow.move(db, t, S.monitoring, form.version.data, dose_mg=dose, weight_kg=weight,
                  duration_minutes=form.duration_minutes.number, dosed_at=dosed_at, lot_number=form.lot_number.data,
                  dose_override_reason=reason if override else "",
                  dose_override_by_id=current_user.id if override else None)
    _add_vitals(t, VitalPhase.post_dose, form.post.form.reading)
    for key, severity in effects:
        db.add(SideEffect(clinic_id=g.clinic.id, treatment_id=t.id, effect=key, severity=severity, recorded_at=utcnow()))
    audit.record("session.monitor", object_type="treatment_session", object_id=t.id, patient_id=patient.id,
                 detail=f"{len(effects)} side effect(s){'; dose override' if override else ''}")
    clock = _clock(t, limits)
    flash(f"Monitoring. Discharge possible from {local_time(clock['at'])}, when the patient is stable and the escort is here.")
    return redirect(url_for("sessions.detail", session_id=t.id))


def _dosed_at(form: MonitorForm, t: TreatmentSession):
    """When dosing began: now, or a time earlier today (clinic time) but not before the start."""
    now = utcnow()
    if not form.dosed_time.data:
        return now
    at = form.dosed_time.at
    if at is None:
        return None
    zone = ZoneInfo(g.clinic.timezone)
    when = local_datetime(now.astimezone(zone).date(), at, g.clinic.timezone).astimezone(timezone.utc)
    if when > now + timedelta(minutes=1):
        form.dosed_time.errors.append("Dosing began: that time is still to come today. Enter when dosing began.")
    elif t.started_at and when < t.started_at.replace(second=0, microsecond=0):
        form.dosed_time.errors.append(f"Dosing began: that is before the session started "
                                      f"({local_time(t.started_at)}).")
    return when


def _clock(t: TreatmentSession, limits: dosing.Limits) -> dict:
    """When this session may be discharged, and why: the modality's observation after dosing."""
    at = dosing.discharge_possible_at(t, limits)
    wait = (at - utcnow()).total_seconds() if at else None
    after = "after the infusion ends" if limits.observe_from_end and t.duration_minutes else "after dosing"
    rule = (f"{t.modality.label} needs at least {limits.min_observation_minutes} minutes of observation {after}"
            + (" (label minimum; no override)." if limits.label_locked else "."))
    return {"at": at, "ready": at is not None and wait <= 0, "wait": dosing.wait_text(wait) if wait else "", "rule": rule,
            "minutes": limits.min_observation_minutes}


@bp.post("/<int:session_id>/discharge")
@staff(*CHARTING_ROLES)
def discharge(session_id: int):
    """Discharge once the observation minimum has passed: the clinician signing this form is the
    one who judged the patient stable and ready to leave; each side effect gets its resolution."""
    t, patient = _load(session_id, for_update=True)
    db = get_session()
    effects = db.exec(select(SideEffect).where(SideEffect.clinic_id == g.clinic.id, SideEffect.treatment_id == t.id)).all()
    form = discharge_form([e.id for e in effects], ready_asked=t.modality == ESKETAMINE)
    ok = form.validate()
    ready = form.ready_minutes.number if t.modality == ESKETAMINE else None
    try:
        workflow.require(t, S.discharged, form.version.data)
    except workflow.Conflict as exc:
        return _conflict(t, patient, exc)
    clock = _clock(t, dosing.limits_for(db, g.clinic.id, t.modality))
    too_early = None
    if clock["at"] is None:
        too_early = "The dosing time is not recorded, so the observation period cannot be checked. Nothing was saved."
    elif not clock["ready"]:
        too_early = (f"Discharge possible from {local_time(clock['at'])} (in {clock['wait']}): {clock['rule']} "
                     "Nothing was saved.")
    elif ready is not None and ready > (utcnow() - dosing.clock_start(t)).total_seconds() // 60:
        form.ready_minutes.errors.append("Ready to leave after: more minutes than have passed since the first device "
                                         "(the patient is leaving now).")
        ok = False
    if too_early or not ok:
        return _render(t, patient, status=422, errors=form.messages, values=form.values, too_early=too_early)
    for e in effects:
        e.resolved = form[f"resolved_{e.id}"].data == "yes"
        db.add(e)
    workflow.move(db, t, S.discharged, form.version.data, notes=form.notes.data or t.notes, escort_confirmed=True,
                  discharge_ready_by_id=current_user.id, ready_minutes=ready)
    _add_vitals(t, VitalPhase.discharge, form.discharge.form.reading)
    audit.record("session.discharge", object_type="treatment_session", object_id=t.id, patient_id=patient.id)
    after_commit("treatment_completed", clinic=g.clinic, treatment=t)
    flash("Discharged to escort. Session complete.")
    return redirect(url_for("sessions.detail", session_id=t.id))


def _end(session_id: int, to: SessionStatus, message: str):
    """Cancel or no-show, after the confirmation step (core.confirm): the first POST only asks."""
    form = EndForm()
    if not form.confirmed:
        t, patient = _load(session_id)
        try:
            workflow.require(t, to, form.version.data)
        except workflow.Conflict as exc:
            return _conflict(t, patient, exc)
        return _ask_end(t, patient, to)
    t, patient = _load(session_id, for_update=True)
    try:
        workflow.move(get_session(), t, to, form.version.data)
    except workflow.Conflict as exc:
        return _conflict(t, patient, exc)
    audit.record(f"session.{to.value}", object_type="treatment_session", object_id=t.id, patient_id=patient.id)
    if to == S.cancelled:
        mail.send_session_change(get_session(), g.clinic, patient, t)  # takes it out of the patient's calendar
    flash(message)
    return redirect(url_for("sessions.detail", session_id=t.id))


def _ask_end(t: TreatmentSession, patient: Patient, to: SessionStatus):
    cancel = to == S.cancelled
    what = f"{t.modality.label} session on {local(t.scheduled_at)}"
    return confirm.ask(
        title="Cancel this session?" if cancel else "Mark this session as a no-show?",
        question=(f"{patient.display_name}'s {what} will be cancelled." if cancel
                  else f"{patient.display_name} did not come to the {what}."),
        facts=[("Patient", patient.display_name), ("Session", what), ("Status now", label(t.status))],
        consequence=("A cancelled session cannot be checked in or started again; book a new one instead."
                     if cancel else "A session marked as a no-show cannot be checked in or started again."),
        action=url_for("sessions.cancel" if cancel else "sessions.no_show", session_id=t.id),
        button="Yes, cancel the session" if cancel else "Yes, mark no-show",
        back=url_for("sessions.detail", session_id=t.id), keep={"version": t.version})


@bp.post("/<int:session_id>/cancel")
@staff()
def cancel(session_id: int):
    return _end(session_id, S.cancelled, "Session cancelled.")


@bp.post("/<int:session_id>/no-show")
@staff()
def no_show(session_id: int):
    return _end(session_id, S.no_show, "Marked as no-show.")
