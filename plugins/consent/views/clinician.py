"""A clinician's signed decisions: acknowledging a relative contraindication or a high blood pressure,
and reviewing a screening answer that changed from "yes" to "no".

Each decision is bound to what the clinician saw (the screening answer, the reading, the pair of
answers): when that changed while the page was open, nothing is saved (409). Bad input re-renders
the form with 422 and writes nothing.
"""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from core import audit
from core.auth import safe_next, staff
from core.db import get_session
from core.models import MODALITY_LABELS, Patient, TreatmentSession
from core.web import after_commit
from plugins.consent import gate, service, status
from plugins.consent.models import ContraindicationItem, Screening
from plugins.consent.screening import clear_item
from plugins.consent.views.base import bp, deny, patient_or_404
from plugins.consent.views.forms import AcknowledgeForm, ReviewForm

def _history_of(p: Patient) -> status.PatientStatus:
    st = status.status_for(get_session(), g.clinic, [p.id])[p.id]
    if st.history_error:
        abort(409, "This patient's screening history could not be read, so nothing can be acknowledged or "
                   "confirmed here. Treatment stays blocked; please ask the clinic's administrator to check the record.")
    return st


# -- acknowledgements -------------------------------------------------------------------------

def _ack_form(p: Patient, *, title: str, label: str, context: str, action: str, on_save, back: str,
              bound: dict | None = None, stale=None, notes=()):
    """GET shows the form; POST signs it. ``bound`` hidden fields name what is acknowledged; ``stale``
    says why the posted ones no longer match (a conflict: nothing is saved)."""
    def page(status=200, errors=None, values=None, conflict=""):
        return render_template("consent/acknowledge.html", patient=p, title=title, label=label, context=context,
                               action=action, errors=errors or {}, values=values or {}, back=back,
                               bound=bound or {}, conflict=conflict, notes=notes), status

    if request.method == "GET":
        return page()
    form = AcknowledgeForm()
    if stale is not None and (why := stale(form)):
        return page(409, conflict=why)
    if not form.validate():
        return page(422, form.messages, {"rationale": form.rationale.data})
    ack = on_save(form.rationale.data)
    # the kind only: which contraindication a patient has is clinical detail, kept out of the audit log
    audit.record("consent.acknowledged", object_type="acknowledgement", object_id=ack.id, patient_id=p.id,
                 detail="blood pressure" if ack.item_code == service.BP_CODE else "screening item")
    after_commit("document_issued", clinic=g.clinic, document=ack)
    flash("Acknowledgement signed.")
    return redirect(back)


def _question(item_id: int, patient_id: int) -> ContraindicationItem:
    """The clinic's screening question by row id: URLs name it so, never by its code (access logs)."""
    question = get_session().exec(select(ContraindicationItem).where(
        ContraindicationItem.id == item_id, ContraindicationItem.clinic_id == g.clinic.id)).first()
    if question is None:
        deny("contraindication", item_id, patient_id)
    return question


@bp.route("/patients/<int:patient_id>/screenings/<int:screening_id>/acknowledge/<int:item_id>",
          methods=["GET", "POST"])
@staff(*service.REVIEWERS)
def acknowledge(patient_id: int, screening_id: int, item_id: int):
    """A relative item: the acknowledgement covers this screening's "yes" only."""
    p = patient_or_404(patient_id)
    db = get_session()
    s = db.exec(select(Screening).where(Screening.id == screening_id, Screening.patient_id == p.id,
                                        Screening.clinic_id == g.clinic.id)).first()
    if s is None:
        deny("screening", screening_id, p.id)
    code = _question(item_id, p.id).code
    item = _history_of(p).items.get(code)
    answer = next((a for a in (item.answers if item else []) if a.screening_id == s.id and a.yes), None)
    if answer is None:
        abort(404)
    if answer.severity != "relative":
        abort(409, "An absolute contraindication cannot be acknowledged: treatment stays blocked for the modalities "
                   "it applies to. If the answer was wrong, record a new screening and review the change.")
    back = url_for("consent.patient", patient_id=p.id)
    if item.yes is None or item.yes.screening_id != s.id:
        abort(409, "A later screening changed this answer, so this one no longer needs an acknowledgement. "
                   "Open the patient's consent page to see the current answers.")
    if item.acknowledgement is not None:
        flash("This contraindication was already acknowledged.")
        return redirect(back)
    return _ack_form(p, title="Acknowledge a relative contraindication", label=answer.label,
                     context=f"Answered yes in the screening of {s.answered_at:%Y-%m-%d} ({answer.recorded_by}).",
                     action=url_for("consent.acknowledge", patient_id=p.id, screening_id=s.id, item_id=item_id),
                     back=back,
                     on_save=lambda rationale: service.acknowledge(
                         db, g.clinic, p.id, code=code, label=answer.label, rationale=rationale,
                         clinician=current_user, screening_id=s.id, ip=request.remote_addr or ""))


@bp.route("/sessions/<int:treatment_id>/blood-pressure", methods=["GET", "POST"])
@staff(*service.REVIEWERS)
def acknowledge_bp(treatment_id: int):
    """The latest baseline reading: the acknowledgement keeps its values, so a higher one needs a new one."""
    db = get_session()
    t = db.exec(select(TreatmentSession).where(TreatmentSession.id == treatment_id,
                                               TreatmentSession.clinic_id == g.clinic.id)).first()
    if t is None:
        deny("treatment_session", treatment_id)
    p = patient_or_404(t.patient_id)
    vital = gate.latest_baselines(db, g.clinic, [t.id]).get(t.id)
    acks = gate.bp_acknowledgements(db, g.clinic, [t.id])[t.id]
    values = service.settings(db, g.clinic)
    sys_max, dia_max = int(values["bp_systolic_max"]), int(values["bp_diastolic_max"])
    if vital is None or (vital.systolic <= sys_max and vital.diastolic <= dia_max):
        abort(409, "There is no blood pressure above the clinic's threshold to acknowledge for this session.")
    back = service.link_to("sessions.detail", session_id=t.id) or url_for("consent.patient", patient_id=p.id)
    if gate.bp_problem(g.clinic, values, vital, acks) is None:
        flash("This reading is already covered by an acknowledgement.")
        return redirect(back)

    def stale(form) -> str:
        if form.vital_id.data != str(vital.id):
            return (f"A newer reading, {vital.systolic}/{vital.diastolic}, was recorded while this page was open. "
                    "Nothing was saved: read it below and sign again if you still want to proceed.")
        return ""

    label = (f"Blood pressure {vital.systolic}/{vital.diastolic} at check-in, taken "
             f"{gate.clock(vital.taken_at, g.clinic)} (threshold {sys_max}/{dia_max})")
    notes = [f"Earlier acknowledgement: {a.systolic}/{a.diastolic} by {a.clinician_name} at "
             f"{gate.clock(a.signed_at, g.clinic)}. It does not cover this higher reading."
             for a in acks if a.systolic is not None]
    return _ack_form(p, title="Acknowledge a high blood pressure", label=label,
                     context=f"{MODALITY_LABELS[t.modality]} session. This acknowledgement covers this reading and "
                             "any later one that is no higher.",
                     action=url_for("consent.acknowledge_bp", treatment_id=t.id), back=back,
                     bound={"vital_id": vital.id}, stale=stale, notes=notes,
                     on_save=lambda rationale: service.acknowledge(
                         db, g.clinic, p.id, code=service.BP_CODE, label=label, rationale=rationale,
                         clinician=current_user, treatment_id=t.id, vital=vital, ip=request.remote_addr or ""))


# -- reviewing a changed answer -----------------------------------------------------------------

@bp.route("/patients/<int:patient_id>/items/<int:item_id>/review", methods=["GET", "POST"])
@staff()
def review(patient_id: int, item_id: int):
    """An item's history and, when a later "no" waits for review, the clinician's signed confirmation.

    Open to all staff so that everyone else is told who must do it (403, audited)."""
    p = patient_or_404(patient_id)
    if current_user.role.value not in service.REVIEWERS:
        audit.record_denied("consent.review", object_type="patient", object_id=p.id, patient_id=p.id)
        return render_template("error.html", code=403, title="A clinician must review this change",
                               message="Only a clinician can review a changed screening answer and confirm it. "
                                       "Until then the earlier answer stays in force."), 403
    item = _history_of(p).items.get(_question(item_id, p.id).code)
    if item is None or not item.ever_yes:
        abort(404)
    back = safe_next(request.args.get("next"), url_for("consent.patient", patient_id=p.id))

    def page(status=200, errors=None, values=None, conflict=""):
        return render_template("consent/review.html", patient=p, item=item, errors=errors or {},
                               values=values or {}, conflict=conflict, back=back), status

    if request.method == "GET":
        audit.record("consent.review_viewed", object_type="patient", object_id=p.id, patient_id=p.id)
        return page()
    if not item.needs_review:
        return page(409, conflict="There is no changed answer to confirm for this item any more. Nothing was saved.")
    form = ReviewForm()
    if (form.yes_screening_id.data, form.no_screening_id.data) != (
            str(item.yes.screening_id), str(item.pending_no.screening_id)):
        return page(409, conflict="The answers changed while this page was open (a newer screening was recorded). "
                                  "Nothing was saved: read the history below and confirm again.")
    if not form.validate():
        return page(422, form.messages, {"reason": form.reason.data})
    reason = form.reason.data
    db = get_session()
    savepoint = db.begin_nested()
    try:
        clearance = clear_item(db, g.clinic, p.id, item, reason=reason, clinician=current_user,
                               ip=request.remote_addr or "")
        savepoint.commit()
    except IntegrityError:  # the same confirmation sent twice at once: the other request won
        savepoint.rollback()
        flash("This change was already confirmed.")
        return redirect(back)
    audit.record("consent.item_cleared", object_type="item_clearance", object_id=clearance.id, patient_id=p.id)
    after_commit("document_issued", clinic=g.clinic, document=clearance)
    flash("Change confirmed and signed: the earlier yes no longer applies.")
    return redirect(back)
