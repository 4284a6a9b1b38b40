"""The staff home page: today's sessions by status, item-9 alerts, and plugin widgets."""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for
from flask_login import current_user
from sqlmodel import select

from core import audit, hooks
from core.auth import staff
from core.db import get_session
from core.form_fields import GliaForm, Posted
from core.plugin_state import gates_off
from core.portal.forms import KIND_SHORT, REASONS
from core.portal.staff import requests_of
from core.models import OutcomeScore, Patient, SessionStatus, utcnow
from core.schedule import today_bounds, todays_sessions
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


@bp.get("/")
@staff()
def index():
    clinic = g.clinic
    db = get_session()
    _start, _end, day = today_bounds(clinic)
    day_rows = todays_sessions(db, clinic)
    rows = [(t, patient) for t, patient, _provider in day_rows]
    providers = {p.id: p for _t, _patient, p in day_rows if p is not None}
    columns = [(title, cls, [r for r in rows if r[0].status in statuses]) for title, statuses, cls in COLUMNS]
    alerts = []
    if is_clinical(current_user):
        alerts = db.exec(select(OutcomeScore, Patient).join(Patient, Patient.id == OutcomeScore.patient_id)
                         .where(OutcomeScore.clinic_id == clinic.id, Patient.clinic_id == clinic.id,
                                OutcomeScore.alert, OutcomeScore.reviewed_at.is_(None))
                         .order_by(OutcomeScore.taken_at.desc())).all()
    change_requests = requests_of(db, clinic)  # patients asking from the portal to move or cancel a session
    widgets, errors = hooks.relay(clinic).collect("dashboard_widgets", expect=Widget, clinic=clinic, user=current_user)
    audit.record("dashboard.view", object_type="schedule", detail=f"{len(rows)} sessions, {len(alerts)} alerts, {len(change_requests)} change requests")
    return render_template("dashboard.html", widgets=hooks.ordered(widgets), plugin_errors=errors, columns=columns,
                           total=len(rows), alerts=alerts, providers=providers, day=day,
                           can_review=current_user.role.value in CHARTING_ROLES, gates_off=gates_off(db, clinic),
                           change_requests=change_requests, kinds=KIND_SHORT, reasons=REASONS)


class ReviewForm(GliaForm):
    back = Posted(max_len=10)  # "chart" when the button was on the chart


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
    if ReviewForm().back.data == "chart":
        return redirect(url_for("patients.chart", patient_id=score.patient_id) + "#outcomes")
    return redirect(url_for("dashboard.index"))
