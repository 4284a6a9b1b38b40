"""Staff: issuing, viewing, voiding and sending superbills and Good Faith Estimates."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, url_for
from flask_login import current_user
from sqlmodel import select

from core import audit, confirm, mail
from core.auth import staff
from core.db import get_session
from core.models import Modality, Provider, utcnow
from core.plugin_state import settings_for
from core.web import after_commit
from plugins.billing import estimates, superbills
from plugins.billing.documents import latest_in_chain, pdf_intact, void, voids
from plugins.billing.errors import BillingError
from plugins.billing.models import BillingEstimate, BillingPortalLink, BillingSuperbill
from plugins.billing.money import local_date, money
from plugins.billing.views import bp
from plugins.billing.views.accounts import account_error
from plugins.billing.views.common import DESK, MANAGERS, patient_of, scoped, send_stored, send_void_copy, signer
from plugins.billing.views.forms import EstimateForm, SuperbillForm, VoidForm


def _issue(patient, scope: str, day):
    """Issue (or, after a void, reissue) the superbill of this period; errors go back to the account page."""
    sb = superbills.issue_superbill(get_session(), g.clinic, patient, scope, day, current_user.id, signer=signer())
    audit.record("billing.superbill_issued", object_type="billing_superbill", object_id=sb.id, patient_id=patient.id,
                 detail=f"replaces {sb.replaces_id}" if sb.replaces_id else "")
    after_commit("document_issued", clinic=g.clinic, document=sb)
    return sb


@bp.post("/patients/<int:pid>/superbills")
@staff(*MANAGERS)
def issue_superbill(pid: int):
    patient = patient_of(pid)
    form = SuperbillForm()
    if not form.validate():
        return account_error(patient, superbill_errors=[(m, "Issue superbill") for m in form.messages.values()])
    try:
        sb = _issue(patient, form.scope.data or "visit", form.date.day)
    except superbills.SuperbillInvalid as exc:
        return account_error(patient, superbill_errors=exc.errors)
    except superbills.AlreadyIssued as exc:
        return account_error(patient, 409, superbill_errors=[(exc.message, exc.existing.label)])
    flash(f"Superbill {sb.label} issued.")
    return redirect(url_for("billing.superbill", sid=sb.id))


@bp.get("/superbills/<int:sid>")
@staff(*DESK)
def superbill(sid: int):
    session = get_session()
    sb = scoped(BillingSuperbill, sid, "billing_superbill")
    patient = patient_of(sb.patient_id)
    newest = latest_in_chain(session, BillingSuperbill, g.clinic.id, sb)
    links = session.exec(select(BillingPortalLink).where(BillingPortalLink.clinic_id == g.clinic.id,
                                                         BillingPortalLink.document_type == "superbill",
                                                         BillingPortalLink.document_id == sb.id)).all()
    audit.record("billing.superbill_view", object_type="billing_superbill", object_id=sb.id, patient_id=patient.id)
    return render_template("billing/superbill.html", sb=sb, patient=patient,
                           void=voids(session, g.clinic.id, "superbill", [sb.id]).get(sb.id),
                           replaced_by=newest if newest.id != sb.id else None,
                           replaces=session.get(BillingSuperbill, sb.replaces_id) if sb.replaces_id else None,
                           links=links, intact=pdf_intact(sb))


@bp.get("/superbills/<int:sid>.pdf")
@staff(*DESK)
def superbill_pdf(sid: int):
    session = get_session()
    sb = scoped(BillingSuperbill, sid, "billing_superbill")
    name = f"superbill-{sb.label}.pdf"
    if voids(session, g.clinic.id, "superbill", [sb.id]):
        return send_void_copy(sb, "billing_superbill", name, lambda: superbills.void_marked(session, g.clinic, sb))
    return send_stored(sb, "billing_superbill", name)


@bp.post("/superbills/<int:sid>/void")
@staff(*MANAGERS)
def void_superbill(sid: int):
    """Void (the row stays as issued) and by default reissue from today's records as the next revision."""
    session = get_session()
    sb = scoped(BillingSuperbill, sid, "billing_superbill")
    patient = patient_of(sb.patient_id)
    form = VoidForm()
    if not confirm.confirmed():
        period = sb.period_start.strftime("%m/%d/%Y") + (f" – {sb.period_end.strftime('%m/%d/%Y')}"
                                                          if sb.period_end != sb.period_start else "")
        return confirm.ask(
            title=f"Void superbill {sb.label}?",
            question=f"Superbill {sb.label} of {patient.display_name} ({money(sb.data['total_cents'])}) will be voided.",
            facts=[("Patient", patient.display_name), ("Superbill", sb.label), ("Period", period),
                   ("Total charges", money(sb.data["total_cents"]))],
            consequence="The superbill stays on file marked VOID and the patient's portal stops offering it. "
                        "Reissuing makes a new, linked superbill from today's records.",
            action=url_for("billing.void_superbill", sid=sb.id), button="Yes, void the superbill",
            back=url_for("billing.superbill", sid=sb.id), reason=form.reason.data,
            options=(("reissue", form.reissue.label.text, form.reissue.data),))
    try:
        void(session, g.clinic.id, "superbill", sb.id, form.reason.data, current_user.id)
    except BillingError as exc:
        return account_error(patient, exc.status, superbill_errors=[(exc.message, sb.label)])
    audit.record("billing.superbill_voided", object_type="billing_superbill", object_id=sb.id, patient_id=patient.id)
    if not form.reissue.data:
        flash(f"{sb.label} voided.")
        return redirect(url_for("billing.superbill", sid=sb.id))
    try:
        new = _issue(patient, sb.scope, sb.period_start)
    except superbills.SuperbillInvalid as exc:
        return account_error(patient, superbill_errors=exc.errors)
    flash(f"{sb.label} voided and reissued as {new.label}.")
    return redirect(url_for("billing.superbill", sid=new.id))


@bp.post("/superbills/<int:sid>/send-link")
@staff(*DESK)
def send_link(sid: int):
    """Tell the patient the superbill waits in the portal, instead of mailing an attachment."""
    session = get_session()
    sb = scoped(BillingSuperbill, sid, "billing_superbill")
    if voids(session, g.clinic.id, "superbill", [sb.id]):
        flash(f"{sb.label} is void: send the link of its replacement instead.")
        return redirect(url_for("billing.superbill", sid=sb.id))
    patient = patient_of(sb.patient_id)
    try:  # no portal account yet: the invitation opens one; else a note that the superbill waits there
        message = (mail.invite_to_portal(session, g.clinic, patient, current_user.id) if patient.user_id is None
                   else mail.send_document_ready(session, g.clinic, patient, "superbill"))
    except mail.InvitationProblem as exc:
        flash(f"Nothing was sent: {exc}")
        return redirect(url_for("billing.superbill", sid=sb.id))
    if message is None:
        flash("Nothing was sent: add the patient's e-mail address first.")
        return redirect(url_for("billing.superbill", sid=sb.id))
    session.add(BillingPortalLink(clinic_id=g.clinic.id, patient_id=sb.patient_id, document_type="superbill",
                                  document_id=sb.id, sent_at=utcnow(), sent_by_id=current_user.id))
    session.flush()
    audit.record("billing.portal_link_sent", object_type="billing_superbill", object_id=sb.id,
                 patient_id=sb.patient_id, detail=message.kind.value)
    what = "a portal invitation" if message.kind.value == "invitation" else "a message that the superbill is in the portal"
    where = "kept in the outbox" if message.status.value == "outbox" else "e-mailed to the patient"
    flash(f"Portal link recorded: {what} was {where}.")
    return redirect(url_for("billing.superbill", sid=sb.id))


# -- Good Faith Estimates ------------------------------------------------------------------------

@bp.post("/patients/<int:pid>/estimates")
@staff(*MANAGERS)
def issue_estimate(pid: int):
    session = get_session()
    clinic = g.clinic
    patient = patient_of(pid)
    providers = {str(p.id): p for p in session.exec(select(Provider).where(Provider.clinic_id == clinic.id)).all()}
    live = {str(e.id): e for e in session.exec(select(BillingEstimate).where(
        BillingEstimate.clinic_id == clinic.id, BillingEstimate.patient_id == patient.id)).all()}
    for dead in voids(session, clinic.id, "estimate", [int(i) for i in live]):
        live.pop(str(dead))
    today = local_date(clinic, None)
    form = EstimateForm(providers=providers, modalities=Modality, live=live, today=today,
                        induction=estimates.induction_text())
    ok = form.validate()
    if ok:
        modality = Modality(form.modality.data)
        try:
            data = estimates.build_estimate(
                session, clinic, patient, providers[form.provider_id.data], modality=modality,
                sessions=form.sessions.number, dose_mg=form.dose_mg.number,
                minutes=50 if modality == Modality.iv_ketamine else None, evaluation_code=form.evaluation_code.data,
                first_service=form.first_date.day, requested=form.requested.data,
                settings=settings_for(session, clinic, "billing"), today=today)
        except BillingError as exc:
            form.dose_mg.errors = [exc.message]
            ok = False
    if not ok:
        return account_error(patient, form_errors=form.messages, values=form.values)
    est = estimates.issue_estimate(session, clinic, patient, data, current_user.id,
                                   replaces=live[form.replaces_id.data] if form.replaces_id.data else None)
    audit.record("billing.estimate_issued", object_type="billing_estimate", object_id=est.id, patient_id=patient.id,
                 detail=f"replaces {est.replaces_id}" if est.replaces_id else "")
    after_commit("document_issued", clinic=clinic, document=est)
    flash(f"Good Faith Estimate issued; give it to the patient by {est.due_date.strftime('%m/%d/%Y')}.")
    return redirect(url_for("billing.account", pid=patient.id))


@bp.post("/estimates/<int:eid>/void")
@staff(*MANAGERS)
def void_estimate(eid: int):
    session = get_session()
    est = scoped(BillingEstimate, eid, "billing_estimate")
    patient = patient_of(est.patient_id)
    form = VoidForm()
    if not confirm.confirmed():
        issued = local_date(g.clinic, est.issued_at).strftime("%m/%d/%Y")
        return confirm.ask(
            title="Void this Good Faith Estimate?",
            question=f"The Good Faith Estimate of {issued} for {patient.display_name} ({money(est.total_cents)}) "
                     "will be voided.",
            facts=[("Patient", patient.display_name), ("Estimate", f"Issued {issued}"),
                   ("Estimated total", money(est.total_cents))],
            consequence="The estimate stays on file marked void and the patient is told not to use it; issue a new "
                        "one if the plan changed.",
            action=url_for("billing.void_estimate", eid=est.id), button="Yes, void the estimate",
            back=url_for("billing.account", pid=patient.id), reason=form.reason.data)
    try:
        void(session, g.clinic.id, "estimate", est.id, form.reason.data, current_user.id)
    except BillingError as exc:
        return account_error(patient, exc.status, form_errors={"void": exc.message})
    audit.record("billing.estimate_voided", object_type="billing_estimate", object_id=est.id, patient_id=patient.id)
    flash("Good Faith Estimate voided.")
    return redirect(url_for("billing.account", pid=patient.id))


@bp.get("/estimates/<int:eid>.pdf")
@staff(*DESK)
def estimate_pdf(eid: int):
    session = get_session()
    est = scoped(BillingEstimate, eid, "billing_estimate")
    name = f"good-faith-estimate-{est.id:06d}.pdf"
    if voids(session, g.clinic.id, "estimate", [est.id]):
        return send_void_copy(est, "billing_estimate", name, lambda: estimates.void_marked(session, g.clinic, est))
    return send_stored(est, "billing_estimate", name)
