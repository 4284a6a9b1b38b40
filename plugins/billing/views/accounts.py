"""Staff: a patient's account, packages, invoices, payments, refunds, corrections and receipts."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, url_for
from flask_login import current_user
from sqlmodel import select

from core import audit, confirm
from core.auth import staff
from core.db import get_session
from core.models import Modality, Patient, Provider, utcnow
from core.pdf import pdf_response
from core.web import after_commit
from plugins.billing import charges as rules
from plugins.billing.documents import render, voids
from plugins.billing.errors import BillingError
from plugins.billing.estimates import estimate_overruns
from plugins.billing.models import (BillingCharge, BillingEstimate, BillingInvoice, BillingPackage, BillingPayment,
                                    BillingSuperbill)
from plugins.billing.money import METHODS, invoice_label, local_date, money
from plugins.billing.payments import (correct_payment, invoice_totals, receipt as receipt_data, record_payment,
                                      record_refund, refundable)
from plugins.billing.views import bp
from plugins.billing.views.common import DESK, MANAGERS, denied, new_key, patient_of, scoped
from plugins.billing.views.forms import CorrectionForm, PackageForm, PaymentForm, RefundForm, VoidForm


def account_context(session, patient: Patient) -> dict:
    clinic = g.clinic

    def rows(model, *order):
        return list(session.exec(select(model).where(model.clinic_id == clinic.id, model.patient_id == patient.id)
                                 .order_by(*order)).all())

    invoices = rows(BillingInvoice, BillingInvoice.number.desc())
    totals = invoice_totals(session, invoices)
    payments = rows(BillingPayment, BillingPayment.received_at.desc())
    superbills = rows(BillingSuperbill, BillingSuperbill.number.desc())
    estimates = rows(BillingEstimate, BillingEstimate.issued_at.desc())
    return {
        "patient": patient, "invoices": invoices, "totals": totals,
        "balance": sum(t.balance for t in totals.values()),
        "drafts": [c for c in rows(BillingCharge, BillingCharge.service_date) if c.status == "draft"],
        "payments": payments, "payment_voids": voids(session, clinic.id, "payment", [p.id for p in payments]),
        "superbills": superbills, "voids": voids(session, clinic.id, "superbill", [s.id for s in superbills]),
        "packages": rows(BillingPackage, BillingPackage.id), "estimates": estimates,
        "estimate_voids": voids(session, clinic.id, "estimate", [e.id for e in estimates]),
        "providers": session.exec(select(Provider).where(Provider.clinic_id == clinic.id,
                                                         Provider.active.is_(True))).all(),
        "overrun": estimate_overruns(session, clinic.id, [patient.id]).get(patient.id),
        "today": local_date(clinic, None), "modalities": list(Modality),
        "superbill_errors": [], "form_errors": {}, "values": {}, "package_errors": {},
        "package_values": {"name": "Prepaid 6-session series", "sessions": "6", "method": "card"},
    }


@bp.get("/patients/<int:pid>")
@staff(*DESK)
def account(pid: int):
    patient = patient_of(pid)
    audit.record("billing.account_view", object_type="patient", object_id=patient.id, patient_id=patient.id)
    return render_template("billing/account.html", **account_context(get_session(), patient))


def account_error(patient: Patient, status: int = 422, **ctx):
    return render_template("billing/account.html", **{**account_context(get_session(), patient), **ctx}), status


@bp.post("/patients/<int:pid>/packages")
@staff(*DESK)
def sell_package(pid: int):
    session = get_session()
    patient = patient_of(pid)
    form = PackageForm()
    if not form.validate():
        return account_error(patient, package_errors=form.messages, package_values=form.values)
    count = form.sessions.number
    package = BillingPackage(clinic_id=g.clinic.id, patient_id=patient.id, name=form.name.data or "Prepaid series",
                             sessions_total=count, paid_cents=form.amount.cents, method=form.method.data,
                             created_at=utcnow(), created_by_id=current_user.id)
    session.add(package)
    session.flush()
    audit.record("billing.package_sold", object_type="billing_package", object_id=package.id, patient_id=patient.id)
    flash(f"Package recorded: {count} sessions.")
    return redirect(url_for("billing.account", pid=patient.id))


# -- invoices ---------------------------------------------------------------------------------

@bp.get("/invoices/<int:iid>")
@staff(*DESK)
def invoice(iid: int):
    return invoice_page(scoped(BillingInvoice, iid, "billing_invoice"))


def invoice_page(inv: BillingInvoice, status: int = 200, error: str = "", form: dict | None = None,
                 form_errors: dict | None = None):
    session = get_session()
    patient = patient_of(inv.patient_id)
    lines = session.exec(select(BillingCharge).where(BillingCharge.invoice_id == inv.id,
                                                     BillingCharge.clinic_id == g.clinic.id)
                         .order_by(BillingCharge.service_date, BillingCharge.id)).all()
    payments = list(session.exec(select(BillingPayment).where(BillingPayment.invoice_id == inv.id,
                                                              BillingPayment.clinic_id == g.clinic.id)
                                 .order_by(BillingPayment.received_at)).all())
    packages = session.exec(select(BillingPackage).where(BillingPackage.clinic_id == g.clinic.id,
                                                         BillingPackage.patient_id == patient.id)).all()
    if status == 200:
        audit.record("billing.invoice_view", object_type="billing_invoice", object_id=inv.id, patient_id=patient.id)
    return render_template(
        "billing/invoice.html", inv=inv, patient=patient, lines=lines, payments=payments,
        packages=[p for p in packages if p.sessions_used < p.sessions_total],
        totals=invoice_totals(session, [inv])[inv.id], key=new_key(), error=error, form=form or {},
        form_errors=form_errors or {}, overrun=estimate_overruns(session, g.clinic.id, [patient.id]).get(patient.id),
        refundable=refundable(session, payments), invoice_void=voids(session, g.clinic.id, "invoice", [inv.id]).get(inv.id),
        payment_voids=voids(session, g.clinic.id, "payment", [p.id for p in payments]),
        replaced={p.replaces_id: p for p in payments if p.replaces_id}), status


@bp.post("/invoices/<int:iid>/void")
@staff(*MANAGERS)
def void_invoice(iid: int):
    """An issued invoice is never edited: voiding it brings its lines back as drafts to correct."""
    session = get_session()
    inv = scoped(BillingInvoice, iid, "billing_invoice")
    totals = invoice_totals(session, [inv])[inv.id]
    form = VoidForm()
    if not confirm.confirmed():
        patient = patient_of(inv.patient_id)
        return confirm.ask(
            title=f"Void invoice {invoice_label(inv.number)}?",
            question=f"Invoice {invoice_label(inv.number)} of {patient.display_name} ({money(totals.total)}) will be "
                     "voided.",
            facts=[("Patient", patient.display_name), ("Invoice", invoice_label(inv.number)),
                   ("Issued", local_date(g.clinic, inv.issued_at).strftime("%m/%d/%Y")),
                   ("Total", money(totals.total))],
            consequence="The invoice stays on file marked void; nothing is owed on it any more, and its lines "
                        "become drafts again to correct and invoice anew.",
            action=url_for("billing.void_invoice", iid=inv.id), button="Yes, void the invoice",
            back=url_for("billing.invoice", iid=inv.id), reason=form.reason.data)
    try:
        copies = rules.void_invoice(session, g.clinic.id, inv.id, form.reason.data, current_user.id, totals.net_paid)
    except BillingError as exc:
        return invoice_page(inv, exc.status, exc.message)
    audit.record("billing.invoice_voided", object_type="billing_invoice", object_id=inv.id, patient_id=inv.patient_id)
    flash(f"{invoice_label(inv.number)} voided; its lines are drafts again for review.")
    tid = next((c.treatment_id for c in copies if c.treatment_id), None)
    return redirect(url_for("billing.charges", tid=tid) if tid else url_for("billing.account", pid=inv.patient_id))


# -- payments, refunds, corrections ---------------------------------------------------------------

@bp.post("/invoices/<int:iid>/payments")
@staff(*DESK)
def pay(iid: int):
    session = get_session()
    inv = scoped(BillingInvoice, iid, "billing_invoice")
    form = PaymentForm()
    if not form.validate():
        return invoice_page(inv, 422, "The payment was not recorded: see the message beside the field.", form.values,
                            form_errors=form.messages)
    try:
        payment, replayed = record_payment(
            session, g.clinic.id, inv.id, amount_cents=form.amount.cents, method=form.method.data,
            key=form.idempotency_key.data, reference=form.reference.data, package_id=form.package_id.number(),
            user_id=current_user.id, seen_balance=form.seen_balance.number())
    except BillingError as exc:
        if exc.status == 404:
            denied("billing_invoice", iid)
        return invoice_page(inv, exc.status, exc.message, form.values)
    if replayed:
        flash("That payment was already recorded; it was not entered twice.")
    else:
        audit.record("billing.payment_recorded", object_type="billing_payment", object_id=payment.id,
                     patient_id=inv.patient_id)
        after_commit("document_issued", clinic=g.clinic, document=payment)  # its receipt, as superbills are
        flash(f"Payment of {money(payment.amount_cents)} recorded: receipt {payment.receipt_label}.")
    return redirect(url_for("billing.invoice", iid=inv.id))


@bp.post("/payments/<int:pay_id>/refund")
@staff(*MANAGERS)
def refund(pay_id: int):
    session = get_session()
    original = scoped(BillingPayment, pay_id, "billing_payment", kind="payment")
    inv = scoped(BillingInvoice, original.invoice_id, "billing_invoice")
    form = RefundForm()
    if not form.validate():
        return invoice_page(inv, 422, form.messages["amount"])
    if not confirm.confirmed():
        return _ask_refund(inv, original, form)
    try:
        entry, replayed = record_refund(session, g.clinic.id, pay_id, amount_cents=form.amount.cents,
                                        key=form.idempotency_key.data, user_id=current_user.id)
    except BillingError as exc:
        return invoice_page(inv, exc.status, exc.message)
    if replayed:
        flash("That refund was already recorded; it was not entered twice.")
    else:
        audit.record("billing.refund_recorded", object_type="billing_payment", object_id=entry.id,
                     patient_id=inv.patient_id)
        after_commit("document_issued", clinic=g.clinic, document=entry)
        flash(f"Refund of {money(entry.amount_cents)} recorded: receipt {entry.receipt_label}.")
    return redirect(url_for("billing.invoice", iid=inv.id))


@bp.post("/payments/<int:pay_id>/correct")
@staff(*MANAGERS)
def correct(pay_id: int):
    """A payment entered wrong: its receipt is voided and the corrected entry gets a new one."""
    session = get_session()
    original = scoped(BillingPayment, pay_id, "billing_payment", kind="payment")
    inv = scoped(BillingInvoice, original.invoice_id, "billing_invoice")
    form = CorrectionForm()
    if not form.validate():
        return invoice_page(inv, 422, "The correction was not recorded: " + " ".join(form.messages.values()),
                            form_errors={pay_id: form.messages})
    try:
        entry, replayed = correct_payment(session, g.clinic.id, pay_id, amount_cents=form.amount.cents,
                                          method=form.method.data, reference=form.reference.data,
                                          reason=form.reason.data, key=form.idempotency_key.data,
                                          user_id=current_user.id)
    except BillingError as exc:
        return invoice_page(inv, exc.status, exc.message)
    if not replayed:
        audit.record("billing.payment_corrected", object_type="billing_payment", object_id=entry.id,
                     patient_id=inv.patient_id, detail=f"replaces {original.id}")
        after_commit("document_issued", clinic=g.clinic, document=entry)
        flash(f"Receipt {original.receipt_label} voided; the corrected payment is receipt {entry.receipt_label}.")
    return redirect(url_for("billing.invoice", iid=inv.id))


def _ask_refund(inv: BillingInvoice, original: BillingPayment, form: RefundForm):
    amount = form.amount.cents
    patient = patient_of(inv.patient_id)
    return confirm.ask(
        title=f"Refund {money(amount)}?",
        question=f"{money(amount)} of receipt {original.receipt_label} will be refunded to {patient.display_name}.",
        facts=[("Patient", patient.display_name), ("Invoice", invoice_label(inv.number)),
               ("Payment", f"Receipt {original.receipt_label}: {money(original.amount_cents)} by "
                           f"{METHODS.get(original.method, original.method)}"),
               ("Refund", money(amount))],
        consequence="A refund is recorded with its own receipt and cannot be undone; the invoice's balance goes "
                    "up by the amount refunded.",
        action=url_for("billing.refund", pay_id=original.id), button=f"Yes, refund {money(amount)}",
        back=url_for("billing.invoice", iid=inv.id),
        keep={"amount": form.amount.data, "idempotency_key": form.idempotency_key.data})


def send_receipt(payment: BillingPayment, *, for_patient: bool = False):
    """A receipt PDF, rendered from the ledger; a voided one carries the VOID mark and its replacement
    (the staff's reason for the void stays with the staff)."""
    session = get_session()
    data = receipt_data(session, g.clinic, payment)
    if for_patient and data["void"]:
        data["void"] = {**data["void"], "reason": ""}
    _html, pdf = render(session, g.clinic, "billing/pdf/receipt.html", **data)
    audit.record("billing.receipt_download", object_type="billing_payment", object_id=payment.id,
                 patient_id=payment.patient_id)
    return pdf_response(pdf, f"receipt-{payment.receipt_label}.pdf")


@bp.get("/payments/<int:pay_id>/receipt.pdf")
@staff(*DESK)
def receipt(pay_id: int):
    return send_receipt(scoped(BillingPayment, pay_id, "billing_payment"))

