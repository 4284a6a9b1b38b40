"""The patient's own billing in the portal: balances, receipts, superbills and estimates.

A voided document is never served here: the patient sees that it was replaced and gets the
replacement instead.
"""
from __future__ import annotations

from flask import g, render_template, url_for
from sqlmodel import select

from core import audit
from core.auth import current_patient, patient_only
from core.db import get_session
from plugins.billing.documents import latest_in_chain, voids
from plugins.billing.models import BillingEstimate, BillingInvoice, BillingPackage, BillingPayment, BillingSuperbill
from plugins.billing.payments import invoice_totals
from plugins.billing.views import bp
from plugins.billing.views.accounts import send_receipt
from plugins.billing.views.common import own, send_stored


@bp.get("/portal/")
@patient_only
def portal_home():
    session = get_session()
    patient = current_patient()
    clinic = g.clinic

    def mine(model, *order):
        return list(session.exec(select(model).where(model.clinic_id == clinic.id, model.patient_id == patient.id)
                                 .order_by(*order)).all())

    invoices = mine(BillingInvoice, BillingInvoice.number.desc())
    totals = invoice_totals(session, invoices)
    payments = mine(BillingPayment, BillingPayment.received_at.desc())
    superbills = mine(BillingSuperbill, BillingSuperbill.number.desc())
    estimates = mine(BillingEstimate, BillingEstimate.issued_at.desc())
    audit.record("billing.portal_view", object_type="patient", object_id=patient.id, patient_id=patient.id)
    return render_template(
        "billing/portal.html", patient=patient, invoices=invoices, totals=totals, payments=payments,
        payment_voids=voids(session, clinic.id, "payment", [p.id for p in payments]), superbills=superbills,
        voids=voids(session, clinic.id, "superbill", [s.id for s in superbills]), estimates=estimates,
        estimate_voids=voids(session, clinic.id, "estimate", [e.id for e in estimates]),
        packages=mine(BillingPackage, BillingPackage.id), balance=sum(t.balance for t in totals.values()))


def _replaced(doc, model, document_type: str, kind: str, link, filename: str):
    """The document itself while valid; once voided, a page naming its replacement, with the link."""
    session = get_session()
    mark = voids(session, g.clinic.id, document_type, [doc.id]).get(doc.id)
    if mark is None:
        return send_stored(doc, f"billing_{document_type}", filename)
    newest = latest_in_chain(session, model, g.clinic.id, doc)
    valid = newest if newest.id != doc.id and not voids(session, g.clinic.id, document_type, [newest.id]) else None
    audit.record("billing.portal_void_notice", object_type=f"billing_{document_type}", object_id=doc.id,
                 patient_id=doc.patient_id)
    return render_template("billing/portal_replaced.html", kind=kind, doc=doc, mark=mark, replacement=valid,
                           replacement_url=link(valid.id) if valid else None), 410


@bp.get("/portal/superbills/<int:sid>.pdf")
@patient_only
def portal_superbill(sid: int):
    sb = own(BillingSuperbill, sid, "billing_superbill")
    return _replaced(sb, BillingSuperbill, "superbill", "superbill",
                     lambda i: url_for("billing.portal_superbill", sid=i), f"superbill-{sb.label}.pdf")


@bp.get("/portal/receipts/<int:pay_id>.pdf")
@patient_only
def portal_receipt(pay_id: int):
    """Receipts are rendered from the ledger; a voided one shows its VOID mark and its replacement."""
    return send_receipt(own(BillingPayment, pay_id, "billing_payment"), for_patient=True)


@bp.get("/portal/estimates/<int:eid>.pdf")
@patient_only
def portal_estimate(eid: int):
    est = own(BillingEstimate, eid, "billing_estimate")
    return _replaced(est, BillingEstimate, "estimate", "Good Faith Estimate",
                     lambda i: url_for("billing.portal_estimate", eid=i), f"good-faith-estimate-{est.id:06d}.pdf")
