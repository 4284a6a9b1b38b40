"""The clinician's attestation that completes a signed consent, and issues its PDF.

Only a clinician with a provider record at the clinic may attest; everyone else is told who must
(403, audited). Attesting twice, or twice at once, issues one document.
"""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from core import audit
from core.auth import safe_next, staff
from core.db import get_session
from core.web import after_commit
from plugins.consent import documents, service
from plugins.consent.models import ConsentRevocation, ConsentTemplate
from plugins.consent.views.base import bp, patient_or_404
from plugins.consent.views.forms import AttestForm
from plugins.consent.views.signing import consent_or_404


@bp.route("/patients/<int:patient_id>/consents/<int:consent_id>/attest", methods=["GET", "POST"])
@staff()
def attest(patient_id: int, consent_id: int):
    p = patient_or_404(patient_id)
    record = consent_or_404(p, consent_id)
    db = get_session()
    back = safe_next(request.args.get("next"), url_for("consent.patient", patient_id=p.id))
    provider = documents.attester(db, g.clinic, current_user)
    if provider is None:
        audit.record_denied("consent.attest", object_type="consent", object_id=record.id, patient_id=p.id)
        return render_template("error.html", code=403, title="A clinician must attest this consent",
                               message="Only the clinician who explained the treatment, signed in with a clinician "
                                       "account that has a provider record at this clinic, can attest it. Until "
                                       "then the consent is awaiting attestation and treatment that needs it stays "
                                       "blocked."), 403
    if record.issued_at_signing or documents.attestation_of(db, record) is not None:
        flash("This consent is already complete; its signed PDF was issued.")
        return redirect(back)
    if db.exec(select(ConsentRevocation.id).where(ConsentRevocation.consent_id == record.id)).first() is not None:
        abort(409, "This consent was withdrawn, so it cannot be attested. The patient signs a new one first.")
    template = db.get(ConsentTemplate, record.template_id)

    def page(status=200, errors=None):
        return render_template("consent/attest.html", patient=p, record=record, back=back, errors=errors or {},
                               statement=documents.statement_for(record, provider),
                               body=service.markdown(template.body, under=1), template=template), status

    if request.method == "GET":
        audit.record("consent.view", object_type="consent", object_id=record.id, patient_id=p.id)
        return page()
    form = AttestForm()
    if not form.validate():
        return page(422, form.messages)
    savepoint = db.begin_nested()
    try:
        att = documents.attest(db, g.clinic, record, current_user, provider, ip=request.remote_addr or "")
        savepoint.commit()
    except IntegrityError:  # the same attestation sent twice at once: the other request issued it
        savepoint.rollback()
        flash("This consent was already attested.")
        return redirect(back)
    audit.record("consent.attested", object_type="consent", object_id=record.id, patient_id=p.id,
                 detail=f"{record.kind} v{record.version}")
    after_commit("document_issued", clinic=g.clinic, document=att)
    flash("Attested and signed: the consent is complete and its PDF was issued.")
    return redirect(back)
