"""The staff side of the portal: patients' open change requests (dashboard and chart), marking one
handled, and the clinic's rule for when questionnaires are due (Settings, Questionnaires)."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, url_for
from flask_login import current_user
from markupsafe import Markup
from sqlmodel import select

from core import audit
from core.auth import clinic_row_or_404, staff
from core.db import get_session
from core.hookspecs import hookimpl
from core.models import ChangeRequest, Patient, QuestionnairePolicy, TreatmentSession, utcnow
from core.portal import staff_bp as bp
from core.portal.forms import KIND_SHORT, REASONS, HandledForm, PolicyForm
from core.questionnaires import INSTRUMENT_CHOICES, RULE_CHOICES, policy_of
from core.slots import Panel

MANAGERS = ("admin", "manager")
CHART_SHOWN = 10  # a chart lists the open requests and the latest handled ones, up to this many


def requests_of(db, clinic, *, patient_id: int | None = None, open_only: bool = True) -> list[tuple]:
    """(ChangeRequest, Patient, TreatmentSession) rows of this clinic, open ones first, in one query."""
    query = (select(ChangeRequest, Patient, TreatmentSession)
             .join(Patient, Patient.id == ChangeRequest.patient_id)
             .join(TreatmentSession, TreatmentSession.id == ChangeRequest.treatment_id)
             .where(ChangeRequest.clinic_id == clinic.id, Patient.clinic_id == clinic.id,
                    TreatmentSession.clinic_id == clinic.id))
    if patient_id is not None:
        query = query.where(ChangeRequest.patient_id == patient_id)
    if open_only:
        query = query.where(ChangeRequest.handled_at.is_(None)).order_by(TreatmentSession.scheduled_at)
    else:
        query = query.order_by(ChangeRequest.handled_at.is_not(None), ChangeRequest.created_at.desc()).limit(CHART_SHOWN)
    return list(db.exec(query).all())


def render_requests(rows, back: str) -> Markup:
    return Markup(render_template("portal/_requests.html", rows=rows, back=back, kinds=KIND_SHORT, reasons=REASONS))


@hookimpl
def patient_chart_panels(clinic, patient, user):
    """The chart's list of this patient's requests from the portal (nothing when there are none); one
    query on every chart, so a chart costs the same whoever the patient is."""
    rows = requests_of(get_session(), clinic, patient_id=patient.id, open_only=False)
    return [Panel("Requests from the portal", render_requests(rows, "chart"), order=40)] if rows else []


@bp.post("/portal-requests/<int:request_id>/handled")
@staff()
def handled(request_id: int):
    """The desk has called the patient back and moved, cancelled or kept the session."""
    req = clinic_row_or_404(ChangeRequest, request_id, object_type="change_request", action="change_request.access")
    form = HandledForm()
    form.validate()
    if req.handled_at is None:
        req.handled_at, req.handled_by_id = utcnow(), current_user.id
        get_session().add(req)
        audit.record("change_request.handle", object_type="change_request", object_id=req.id,
                     patient_id=req.patient_id, detail=req.kind)
        flash("Request marked handled.")
    else:
        flash("That request was already handled.")
    if form.back.data == "chart":
        return redirect(url_for("patients.chart", patient_id=req.patient_id))
    return redirect(url_for("dashboard.index"))


@bp.route("/settings/questionnaires", methods=["GET", "POST"])
@staff(*MANAGERS)
def questionnaire_settings():
    db = get_session()
    policy = policy_of(db, g.clinic)
    form = PolicyForm()
    page = {"instrument_choices": INSTRUMENT_CHOICES, "rule_choices": RULE_CHOICES}
    if not form.is_submitted():
        values = {"instruments": policy.instruments, "rule": policy.rule, "every_n": str(policy.every_n),
                  "days_before": str(policy.days_before)}
        return render_template("settings/questionnaires.html", values=values, errors={}, **page)
    if not form.validate():
        return render_template("settings/questionnaires.html", values=form.values, errors=form.messages, **page), 422
    row = db.get(QuestionnairePolicy, g.clinic.id) or QuestionnairePolicy(clinic_id=g.clinic.id)
    row.instruments, row.rule, row.days_before = form.instruments.data, form.rule.data, form.days_before.number
    if form.every_n.number is not None:
        row.every_n = form.every_n.number
    db.add(row)
    audit.record("clinic.questionnaire_policy", object_type="clinic", object_id=g.clinic.id,
                 detail=f"{row.instruments}; {row.rule}" + (f" {row.every_n}" if row.rule == "first_then_every" else "")
                 + f"; {row.days_before} days before")
    flash("Questionnaire settings saved.")
    return redirect(url_for("portal_staff.questionnaire_settings"))
