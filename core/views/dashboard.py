"""The staff home page: today's sessions by status, item-9 alerts, and plugin widgets."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from sqlmodel import select

from core import audit, hooks
from core.auth import staff
from core.db import get_session
from core.plugin_state import gates_off
from core.models import OutcomeScore, Patient, Provider, SessionStatus, TreatmentSession, utcnow
from core.slots import Widget
from core.views.patients import CHARTING_ROLES, is_clinical

bp = Blueprint("dashboard", __name__)
S = SessionStatus
COLUMNS = [  # (title, statuses, pill class)
    ("Scheduled", (S.scheduled,), "info"),
    ("Checked in", (S.checked_in,), "warn"),
    ("In treatment", (S.in_progress, S.monitoring), "bad"),
    ("Discharged", (S.discharged,), "ok"),
    ("Cancelled or no-show", (S.cancelled, S.no_show), "off"),
]


def today_bounds(clinic) -> tuple[datetime, datetime, date]:
    """Midnight to midnight in the clinic's zone, as UTC bounds, plus the local date."""
    zone = ZoneInfo(clinic.timezone)
    local_day = utcnow().astimezone(zone).date()
    start = datetime.combine(local_day, time(0), tzinfo=zone)
    return start, datetime.combine(local_day + timedelta(days=1), time(0), tzinfo=zone), local_day


@bp.get("/")
@staff()
def index():
    clinic = g.clinic
    db = get_session()
    start, end, day = today_bounds(clinic)
    rows = db.exec(select(TreatmentSession, Patient)
                   .join(Patient, Patient.id == TreatmentSession.patient_id)
                   .where(TreatmentSession.clinic_id == clinic.id, Patient.clinic_id == clinic.id,
                          TreatmentSession.scheduled_at >= start, TreatmentSession.scheduled_at < end)
                   .order_by(TreatmentSession.scheduled_at, TreatmentSession.id)).all()
    providers = {p.id: p for p in db.exec(select(Provider).where(Provider.clinic_id == clinic.id)).all()}
    columns = [(title, cls, [r for r in rows if r[0].status in statuses]) for title, statuses, cls in COLUMNS]
    alerts = []
    if is_clinical(current_user):
        alerts = db.exec(select(OutcomeScore, Patient).join(Patient, Patient.id == OutcomeScore.patient_id)
                         .where(OutcomeScore.clinic_id == clinic.id, Patient.clinic_id == clinic.id,
                                OutcomeScore.alert, OutcomeScore.reviewed_at.is_(None))
                         .order_by(OutcomeScore.taken_at.desc())).all()
    widgets, errors = hooks.relay(clinic).collect("dashboard_widgets", expect=Widget, clinic=clinic, user=current_user)
    audit.record("dashboard.view", object_type="schedule", detail=f"{len(rows)} sessions, {len(alerts)} alerts")
    return render_template("dashboard.html", widgets=hooks.ordered(widgets), plugin_errors=errors, columns=columns,
                           total=len(rows), alerts=alerts, providers=providers, day=day,
                           can_review=current_user.role.value in CHARTING_ROLES, gates_off=gates_off(db, clinic))


@bp.post("/alerts/<int:score_id>/review")
@staff(*CHARTING_ROLES)
def review_alert(score_id: int):
    """A clinician has seen a positive PHQ-9 item 9 and acted on it; recorded once, audited."""
    db = get_session()
    score = db.exec(select(OutcomeScore).where(OutcomeScore.id == score_id, OutcomeScore.clinic_id == g.clinic.id,
                                               OutcomeScore.alert).with_for_update()).first()
    if score is None:
        audit.record_denied("alert.review", object_type="outcome_score", object_id=score_id)
        abort(404)
    if score.reviewed_at is None:
        score.reviewed_at = utcnow()
        score.reviewed_by_id = current_user.id
        db.add(score)
        audit.record("alert.review", object_type="outcome_score", object_id=score.id, patient_id=score.patient_id)
        flash("Alert marked as reviewed.")
    else:
        flash("That alert was already reviewed.")
    back = request.form.get("back")
    if back == "chart":
        return redirect(url_for("patients.chart", patient_id=score.patient_id) + "#outcomes")
    return redirect(url_for("dashboard.index"))
