"""The patient's pages: home (upcoming sessions, what is due, documents), asking for a change, and
the PHQ-9/GAD-7 questionnaires.

Every row is looked up through the signed-in patient (``current_patient``) and the current clinic:
another patient's session or score answers 404, the same as one that does not exist, and the miss
is audited. A questionnaire saved here is the same OutcomeScore, scored by the same core.scoring,
as one staff enter on the chart, so the trend and the item-9 alert cannot tell them apart.
"""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, url_for
from sqlmodel import select

from core import audit, hooks, scoring
from core.auth import current_patient, patient_only
from core.db import get_session
from core.models import ChangeRequest, OutcomeScore, Patient, Provider, SessionStatus, TreatmentSession, utcnow
from core.portal import bp
from core.portal.forms import KIND_SHORT, KINDS, REASONS, ChangeRequestForm, questionnaire_form
from core.portal.instructions import INSTRUCTIONS
from core.questionnaires import ANSWERS, DEFINITIONS, due_questionnaires, instrument_of, upcoming_sessions
from core.slots import PortalItem


def _open_requests(treatment_ids: list[int]) -> dict[int, ChangeRequest]:
    """The open change request of each of these sessions (at most one each), in one query."""
    rows = get_session().exec(select(ChangeRequest).where(
        ChangeRequest.clinic_id == g.clinic.id, ChangeRequest.treatment_id.in_(treatment_ids),
        ChangeRequest.handled_at.is_(None))).all() if treatment_ids else []
    return {r.treatment_id: r for r in rows}


@bp.get("/")
@patient_only
def home():
    db, clinic = get_session(), g.clinic
    patient = current_patient()
    items, errors = hooks.relay(clinic).collect("portal_items", expect=PortalItem, clinic=clinic, patient=patient)
    upcoming = upcoming_sessions(db, clinic, patient)
    providers = {p.id: p for p in db.exec(select(Provider).where(
        Provider.clinic_id == clinic.id, Provider.id.in_({t.provider_id for t in upcoming})))} if upcoming else {}
    due = due_questionnaires(clinic, patient, db=db, upcoming=upcoming)
    audit.record("portal.view", object_type="patient", object_id=patient.id, patient_id=patient.id,
                 detail=f"{len(upcoming)} upcoming, {len(due)} questionnaires due")
    return render_template("portal/home.html", patient=patient, items=hooks.ordered(items), plugin_errors=errors,
                           upcoming=upcoming, providers=providers, instructions=INSTRUCTIONS, due=due,
                           requests=_open_requests([t.id for t in upcoming]), kinds=KIND_SHORT, reasons=REASONS)


def _own_upcoming(session_id: int, patient: Patient) -> TreatmentSession:
    """One of this patient's upcoming sessions not yet checked in, or 404 (audited) for anything else."""
    t = next((t for t in upcoming_sessions(get_session(), g.clinic, patient)
              if t.id == session_id and t.status == SessionStatus.scheduled), None)
    if t is None:
        audit.record_denied("portal.session_access", object_type="treatment_session", object_id=session_id,
                            patient_id=patient.id)
        abort(404)
    return t


@bp.route("/sessions/<int:session_id>/change", methods=["GET", "POST"])
@patient_only
def change(session_id: int):
    """Ask the clinic to move or cancel a session; the desk calls back and makes the change."""
    db = get_session()
    patient = current_patient()
    t = _own_upcoming(session_id, patient)
    pending = _open_requests([t.id]).get(t.id)
    form = ChangeRequestForm()
    page = {"t": t, "patient": patient, "pending": pending, "kinds": KINDS, "reasons": REASONS}
    if not form.is_submitted():
        audit.record("portal.session_view", object_type="treatment_session", object_id=t.id, patient_id=patient.id)
        return render_template("portal/change.html", values={"kind": "move"}, errors={}, **page)
    if pending is not None:  # asked already: one open request per session, nothing new written
        flash("You have already asked about this session. The clinic will contact you.")
        return redirect(url_for("portal.home"))
    if not form.validate():
        return render_template("portal/change.html", values=form.values, errors=form.messages, **page), 422
    req = ChangeRequest(clinic_id=g.clinic.id, patient_id=patient.id, treatment_id=t.id, kind=form.kind.data,
                        reason=form.reason.data, note=form.note.data or "", created_at=utcnow())
    db.add(req)
    db.flush()
    audit.record("portal.change_request", object_type="change_request", object_id=req.id, patient_id=patient.id,
                 detail=f"{req.kind} session {t.id}")
    flash("Your request was sent. The clinic will contact you to confirm; until then your appointment stands.")
    return redirect(url_for("portal.home"))


@bp.route("/questionnaires/<instrument>", methods=["GET", "POST"])
@patient_only
def questionnaire(instrument: str):
    instrument = instrument_of(instrument)  # the URL word (phq9, gad7) as the Instrument, or None
    if instrument is None:
        abort(404)
    db = get_session()
    patient = current_patient()
    due = next((d for d in due_questionnaires(g.clinic, patient, db=db) if d.instrument == instrument), None)
    form = questionnaire_form(instrument)()
    page = {"instrument": instrument, "definition": DEFINITIONS[instrument], "answers": ANSWERS, "due": due,
            "fields": [f for f in form if f.name.startswith("item")]}
    if not form.is_submitted():
        audit.record("portal.questionnaire_view", object_type="patient", object_id=patient.id, patient_id=patient.id,
                     detail=instrument.value)
        return render_template("portal/questionnaire.html", values={}, errors={}, **page)
    if due is None:
        flash(f"The {instrument.value} is not due now; nothing was saved.")
        return redirect(url_for("portal.home"))
    if not form.validate():
        return render_template("portal/questionnaire.html", values=form.values, errors=form.messages, **page), 422
    items = form.answers()
    result = scoring.score(instrument, items)
    score = OutcomeScore(clinic_id=g.clinic.id, patient_id=patient.id, instrument=instrument, items=items,
                         total=result["total"], band=result["band"], item9=result["item9"], alert=result["alert"],
                         taken_at=utcnow(), treatment_id=due.treatment.id)
    db.add(score)
    db.flush()
    audit.record("score.create", object_type="outcome_score", object_id=score.id, patient_id=patient.id,
                 detail="from the portal" + ("; item-9 alert raised" if score.alert else ""))
    return redirect(url_for("portal.thanks", score_id=score.id))


@bp.get("/questionnaires/done/<int:score_id>")
@patient_only
def thanks(score_id: int):
    """Received; with crisis resources first whenever item 9 was answered above 0."""
    db = get_session()
    patient = current_patient()
    score = db.exec(select(OutcomeScore).where(OutcomeScore.id == score_id, OutcomeScore.clinic_id == g.clinic.id,
                                               OutcomeScore.patient_id == patient.id)).first()
    if score is None:
        audit.record_denied("portal.score_access", object_type="outcome_score", object_id=score_id,
                            patient_id=patient.id)
        abort(404)
    audit.record("portal.score_view", object_type="outcome_score", object_id=score.id, patient_id=patient.id)
    return render_template("portal/thanks.html", score=score, due=due_questionnaires(g.clinic, patient, db=db))
