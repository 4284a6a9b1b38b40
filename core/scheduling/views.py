"""Planning from the chart: propose a course (or the next maintenance session), book it, move a session."""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for
from flask_login import current_user
from sqlmodel import select

from core import audit
from core.auth import clinic_row_or_404, staff
from core.db import get_session, reads
from core.models import Modality, Patient, Provider, SessionStatus, TreatmentSession
from core.scheduling.calendar import Calendar
from core.scheduling.forms import CourseForm, MoveForm
from core.scheduling.models import Booking
from core.scheduling.patterns import BOOKED_MINUTES, DEFAULT, PATTERNS
from core.scheduling.planner import MAINTENANCE, Proposed, Request, book, check, move, propose_course, propose_next

bp = Blueprint("planning", __name__)


def _choices(cal: Calendar):
    db = get_session()
    providers = db.exec(select(Provider).where(Provider.clinic_id == g.clinic.id, Provider.active)
                        .order_by(Provider.last_name, Provider.first_name)).all()
    return {"providers": [(str(p.id), p.display_name) for p in providers],
            "chairs": [(str(c.id), c.name) for c in cal.active_chairs()],
            "modalities": [(m.value, m.label) for m in Modality], "patterns": PATTERNS,
            "booked_minutes": BOOKED_MINUTES, "maintenance": MAINTENANCE}


def _page(patient: Patient, cal: Calendar, form: CourseForm | None = None, status: int = 200, **ctx):
    values = form.values if form is not None else {}
    if form is None:  # the first visit: the modality the patient is on, its usual pattern
        last = get_session().exec(select(TreatmentSession.modality).where(
            TreatmentSession.clinic_id == g.clinic.id, TreatmentSession.patient_id == patient.id)
            .order_by(TreatmentSession.scheduled_at.desc()).limit(1)).first() or Modality.iv_ketamine
        values = {"modality": last.value, "pattern": DEFAULT[last], "at": "09:00", "interval_weeks": "4"}
    return render_template("scheduling/plan.html", patient=patient, cal=cal, values=values,
                           errors=form.messages if form is not None else {}, **_choices(cal), **ctx), status


def _request(form: CourseForm, patient: Patient) -> Request:
    return Request(patient, Modality(form.modality.data), form.pattern.data, form.provider_id.row,
                   form.chair_id.row, form.interval_weeks.number)


def _posted(form: CourseForm) -> list[Proposed]:
    return [Proposed(entry.day.day, entry.at.at) for entry in form.rows.entries]


@bp.get("/patients/<int:patient_id>/plan")
@staff()
def plan(patient_id: int):
    patient = clinic_row_or_404(Patient, patient_id, object_type="patient", action="patient.access")
    audit.record("course.plan_view", object_type="patient", object_id=patient.id, patient_id=patient.id)
    return _page(patient, Calendar.load(get_session(), g.clinic))


@bp.post("/patients/<int:patient_id>/plan/propose")
@staff()
@reads
def propose(patient_id: int):
    """Propose the dates (a fresh proposal, or the posted rows checked again as edited); writes nothing."""
    patient = clinic_row_or_404(Patient, patient_id, object_type="patient", action="patient.access")
    db, form = get_session(), CourseForm()
    cal = Calendar.load(db, g.clinic)
    if not form.validate():
        return _page(patient, cal, form, 422)
    req = _request(form, patient)
    if form.rows.entries:
        proposals = _posted(form)
        check(db, cal, req, proposals)
    elif req.pattern == MAINTENANCE:
        proposals = propose_next(db, cal, req, form.at.at)
    else:
        proposals = propose_course(db, cal, req, form.first_day.day, form.at.at)
    audit.record("course.propose", object_type="patient", object_id=patient.id, patient_id=patient.id,
                 detail=f"{req.pattern}: {len(proposals)} sessions, {sum(p.problem is not None for p in proposals)} in the way")
    return _page(patient, cal, form, proposals=proposals, req=req)


@bp.post("/patients/<int:patient_id>/plan/book")
@staff()
def book_plan(patient_id: int):
    """Book every proposed session or none; a clash found now is shown on the proposal, with 409."""
    patient = clinic_row_or_404(Patient, patient_id, object_type="patient", action="patient.access")
    db, form = get_session(), CourseForm()
    cal = Calendar.load(db, g.clinic)
    if not form.validate() or not form.rows.entries:
        if not form.rows.entries and not form.errors:
            form.pattern.errors.append("Propose the dates first, then book them.")
        return _page(patient, cal, form, 422)
    req, proposals = _request(form, patient), _posted(form)
    booked = book(db, cal, req, proposals, current_user.id)
    if not booked:
        audit.record("course.book_refused", object_type="patient", object_id=patient.id, patient_id=patient.id,
                     outcome="refused", detail=f"{sum(p.problem is not None for p in proposals)} sessions in the way")
        return _page(patient, cal, form, 409, proposals=proposals, req=req, refused=True)
    flash(f"{len(booked)} session{'s' if len(booked) != 1 else ''} booked.")
    return redirect(url_for("patients.chart", patient_id=patient.id) + "#sessions")


@bp.route("/schedule/sessions/<int:session_id>/move", methods=["GET", "POST"])
@staff()
def move_session(session_id: int):
    db = get_session()
    t = clinic_row_or_404(TreatmentSession, session_id, object_type="treatment_session", action="session.access")
    if t.status != SessionStatus.scheduled:
        abort(409)
    patient = db.get(Patient, t.patient_id)
    booking = db.get(Booking, t.id)
    cal = Calendar.load(db, g.clinic)
    choices = _choices(cal)
    form = MoveForm()
    if not form.is_submitted():
        local = t.scheduled_at.astimezone(cal.zone)
        values = {"day": local.date().isoformat(), "at": local.strftime("%H:%M"), "provider_id": str(t.provider_id),
                  "chair_id": str(booking.chair_id or "") if booking else ""}
        return render_template("scheduling/move.html", t=t, patient=patient, values=values, errors={}, **choices)
    problem = None
    if form.validate():
        req = Request(patient, t.modality, "move", form.provider_id.row, form.chair_id.row)
        proposal = Proposed(form.day.day, form.at.at)
        if move(db, cal, t, booking, req, proposal):
            flash("Session moved.")
            return redirect(url_for("sessions.detail", session_id=t.id))
        problem = proposal.problem
    return render_template("scheduling/move.html", t=t, patient=patient, values=form.values, errors=form.messages,
                           problem=problem, **choices), 409 if problem else 422
