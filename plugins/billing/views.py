"""The billing blueprint: staff pages under /billing/ and the patient's own billing in the portal.

Every lookup is scoped by the current clinic (and, in the portal, by the signed-in patient); a
foreign id answers 404 and leaves a denied-access audit row. Bad input re-renders the form with
HTTP 422, and the request's transaction is rolled back, so nothing is half-written.
"""
from __future__ import annotations

import uuid

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from sqlmodel import or_, select

from core import audit
from core.auth import clinic_row_or_404, current_patient, patient_only, staff
from core.db import get_session
from core.models import Diagnosis, Modality, Patient, Provider, SessionStatus, TreatmentSession
from core.pdf import html_to_pdf, pdf_response
from core.plugin_state import save_settings, settings_for
from core.validators import clean_text, parse_date
from core.web import after_commit
from plugins.billing import service
from plugins.billing.models import (BillingCharge, BillingEstimate, BillingInvoice, BillingPackage,
                                    BillingPayment, BillingPortalLink, BillingSuperbill, BillingSuperbillVoid)
from plugins.billing.service import BillingError, SuperbillInvalid, invoice_label

bp = Blueprint("billing", __name__, url_prefix="/billing", template_folder="templates")

MANAGERS = ("admin", "manager")
DESK = ("admin", "manager", "front_desk")


@bp.app_template_filter("invoice_label")
def _invoice_label(number: int) -> str:
    return invoice_label(number)


@bp.context_processor
def _helpers():
    def core_link(endpoint: str, **values):
        """A link into a core page when that page exists in this build, else None."""
        return url_for(endpoint, **values) if endpoint in current_app.view_functions else None

    return {"core_link": core_link, "methods": service.METHODS, "is_manager": _is_manager}


def _is_manager() -> bool:
    return current_user.is_authenticated and current_user.role.value in MANAGERS


# -- lookups (always scoped by clinic; a miss is a 404 with an audit row) -------------------

def _denied(object_type: str, object_id) -> None:
    audit.record_denied("billing.access_denied", object_type=object_type, object_id=object_id)
    abort(404)


def _scoped(model, object_id: int, object_type: str, **extra):
    return clinic_row_or_404(model, object_id, object_type=object_type, action="billing.access_denied", **extra)


def _patient(pid: int) -> Patient:
    return _scoped(Patient, pid, "patient")


def _key() -> str:
    """A fresh idempotency key for a money form: a resubmit of the same form records once."""
    return uuid.uuid4().hex


# -- staff: overview ---------------------------------------------------------------------

@bp.get("/")
@staff(*DESK)
def index():
    session = get_session()
    clinic = g.clinic
    drafts = session.exec(select(BillingCharge, Patient).join(Patient, Patient.id == BillingCharge.patient_id)
                          .where(BillingCharge.clinic_id == clinic.id, BillingCharge.status == "draft")
                          .order_by(BillingCharge.service_date, BillingCharge.id)).all()
    review: dict = {}
    for charge, patient in drafts:
        key = (charge.treatment_id, patient.id)
        entry = review.setdefault(key, {"patient": patient, "date": charge.service_date, "total": 0, "lines": 0,
                                        "treatment_id": charge.treatment_id})
        entry["total"] += charge.amount_cents
        entry["lines"] += 1
    rows, buckets = service.aging(session, clinic.id, service.local_date(clinic, None))
    names = _names(session, {inv.patient_id for inv, _t, _a in rows})
    overruns = service.estimate_overruns(session, clinic.id)
    over_names = _names(session, set(overruns))
    patients = session.exec(select(Patient).where(Patient.clinic_id == clinic.id, Patient.archived.is_(False), or_(
        Patient.id.in_(select(BillingCharge.patient_id).where(BillingCharge.clinic_id == clinic.id)),
        Patient.id.in_(select(BillingPackage.patient_id).where(BillingPackage.clinic_id == clinic.id)),
        Patient.id.in_(select(BillingEstimate.patient_id).where(BillingEstimate.clinic_id == clinic.id))))
        .order_by(Patient.legal_last_name, Patient.legal_first_name)).all()
    audit.record("billing.overview", object_type="clinic", object_id=clinic.id)
    return render_template("billing/index.html", review=list(review.values()), aging=rows, buckets=buckets,
                           names=names, overruns=overruns, over_names=over_names, patients=patients)


def _names(session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {p.id: p.display_name for p in session.exec(select(Patient).where(Patient.id.in_(ids),
                                                                             Patient.clinic_id == g.clinic.id)).all()}


@bp.get("/account")
@staff(*DESK)
def account_jump():
    """The patient picker on the overview (an opaque id, never a name, in the URL)."""
    pid = request.args.get("patient_id", type=int)
    if pid is None:
        return redirect(url_for("billing.index"))
    return redirect(url_for("billing.account", pid=_patient(pid).id))


# -- staff: fee schedule and settings ---------------------------------------------------------

@bp.route("/fees", methods=["GET", "POST"])
@staff(*MANAGERS)
def fees():
    session = get_session()
    clinic = g.clinic
    rows = list(service.fees_by_code(session, clinic.id).values())
    rows.sort(key=lambda f: (f.kind != "service", f.code))
    settings = settings_for(session, clinic, "billing")
    errors: dict[str, str] = {}
    if request.method == "POST":
        for fee in rows:
            raw = request.form.get(f"price_{fee.code}")
            try:
                if raw is not None:
                    fee.price_cents = service.parse_amount(raw, field=f"{fee.code} price")
            except BillingError as exc:
                errors[fee.code] = exc.message
            if fee.kind == "drug":
                ndc = clean_text(request.form.get(f"ndc_{fee.code}", fee.ndc))
                if ndc and not service.ndc_is_valid(ndc):
                    errors[fee.code] = f"{fee.code}: an NDC is 11 digits written 5-4-2, such as 12345-6789-01."
                fee.ndc = ndc
            session.add(fee)
        choice = request.form.get("esketamine_billing", settings["esketamine_billing"])
        visit = request.form.get("office_visit_code", settings["office_visit_code"])
        declared = current_app.extensions["glia"].settings["billing"]
        if choice not in declared["esketamine_billing"].choices or visit not in declared["office_visit_code"].choices:
            errors["settings"] = "Choose one of the listed billing options."
        if errors:
            return render_template("billing/fees.html", fees=rows, errors=errors, settings=settings,
                                   declared=declared), 422
        save_settings(session, clinic, "billing", {"esketamine_billing": choice, "office_visit_code": visit})
        audit.record("billing.fees_changed", object_type="clinic", object_id=clinic.id)
        flash("Fee schedule saved.")
        return redirect(url_for("billing.fees"))
    return render_template("billing/fees.html", fees=rows, errors=errors, settings=settings,
                           declared=current_app.extensions["glia"].settings["billing"])


# -- staff: reviewing charges from a session ---------------------------------------------------

@bp.route("/treatments/<int:tid>/charges", methods=["GET", "POST"])
@staff(*MANAGERS)
def charges(tid: int):
    session = get_session()
    clinic = g.clinic
    treatment = _scoped(TreatmentSession, tid, "treatment_session")
    patient = _patient(treatment.patient_id)
    lines = session.exec(select(BillingCharge).where(BillingCharge.clinic_id == clinic.id,
                                                     BillingCharge.treatment_id == tid)
                         .order_by(BillingCharge.id)).all()
    drafts = [c for c in lines if c.status == "draft"]
    diagnoses = _diagnoses(session, patient)
    errors: dict[int, str] = {}
    if request.method == "POST":
        action = request.form.get("action", "save")
        if action == "draft":
            if treatment.status != SessionStatus.discharged:
                abort(409, "Charges come from a discharged session.")
            service.draft_charges(session, clinic, treatment, settings_for(session, clinic, "billing"))
            audit.record("billing.charges_drafted", object_type="treatment_session", object_id=tid,
                         patient_id=patient.id)
            return redirect(url_for("billing.charges", tid=tid))
        kept = []
        for c in drafts:
            if request.form.get(f"remove_{c.id}"):
                session.delete(c)
                continue
            problem = _apply_line_edits(c, request.form, len(diagnoses))
            if problem:
                errors[c.id] = problem
            session.add(c)
            kept.append(c)
        if errors:
            return render_template("billing/charges.html", treatment=treatment, patient=patient, lines=lines,
                                   drafts=drafts, diagnoses=diagnoses, errors=errors), 422
        session.flush()
        audit.record("billing.charges_reviewed", object_type="treatment_session", object_id=tid,
                     patient_id=patient.id)
        if action == "invoice":
            try:
                invoice = service.create_invoice(session, clinic.id, patient.id, [c.id for c in kept],
                                                 current_user.id)
            except BillingError as exc:
                abort(exc.status, exc.message)
            audit.record("billing.invoice_issued", object_type="billing_invoice", object_id=invoice.id,
                         patient_id=patient.id)
            flash(f"Invoice {invoice_label(invoice.number)} issued.")
            return redirect(url_for("billing.invoice", iid=invoice.id))
        flash("Charges saved.")
        return redirect(url_for("billing.charges", tid=tid))
    audit.record("billing.charges_view", object_type="treatment_session", object_id=tid, patient_id=patient.id)
    return render_template("billing/charges.html", treatment=treatment, patient=patient, lines=lines,
                           drafts=drafts, diagnoses=diagnoses, errors=errors)


def _apply_line_edits(c: BillingCharge, form, n_dx: int) -> str | None:
    """Units, unit price, pointers, modifiers and dose of one draft line; returns a problem or None."""
    units_raw = form.get(f"units_{c.id}", str(c.units)).strip()
    if not units_raw.isdigit() or not 1 <= int(units_raw) <= 999:
        return f"{c.code}: units must be a whole number from 1 to 999."
    try:
        price = service.parse_amount(form.get(f"price_{c.id}", service.dollars(c.unit_price_cents)),
                                     field=f"{c.code} unit price")
    except BillingError as exc:
        return exc.message
    pointers = "".join(form.get(f"pointers_{c.id}", c.pointers).upper().split()).replace(",", "")
    valid = service.LETTERS[:n_dx]
    if not 1 <= len(pointers) <= 4 or any(p not in valid for p in pointers) or len(set(pointers)) != len(pointers):
        listed = f"A-{valid[-1]}" if valid else "none: add a diagnosis on the chart"
        return f"{c.code}: give 1 to 4 different diagnosis letters from the list ({listed})."
    modifiers = " ".join(form.get(f"modifiers_{c.id}", c.modifiers).upper().split())
    if len(modifiers.split()) > 4 or any(len(m) != 2 or not m.isalnum() for m in modifiers.split()):
        return f"{c.code}: up to 4 two-character modifiers, such as 25."
    dose = clean_text(form.get(f"dose_{c.id}", c.dose))[:20]
    c.units, c.unit_price_cents, c.pointers, c.modifiers, c.dose = int(units_raw), price, pointers, modifiers, dose
    c.amount_cents = c.units * c.unit_price_cents
    return None


def _diagnoses(session, patient: Patient) -> list[Diagnosis]:
    return list(session.exec(select(Diagnosis).where(
        Diagnosis.clinic_id == g.clinic.id, Diagnosis.patient_id == patient.id, Diagnosis.resolved_on.is_(None))
        .order_by(Diagnosis.is_primary.desc(), Diagnosis.id)).all())[:12]


# -- staff: a patient's account -----------------------------------------------------------------

def _account_context(session, patient: Patient) -> dict:
    clinic = g.clinic
    invoices = session.exec(select(BillingInvoice).where(BillingInvoice.clinic_id == clinic.id,
                                                         BillingInvoice.patient_id == patient.id)
                            .order_by(BillingInvoice.number.desc())).all()
    totals = service.invoice_totals(session, list(invoices))
    drafts = session.exec(select(BillingCharge).where(BillingCharge.clinic_id == clinic.id,
                                                      BillingCharge.patient_id == patient.id,
                                                      BillingCharge.status == "draft")
                          .order_by(BillingCharge.service_date)).all()
    payments = session.exec(select(BillingPayment).where(BillingPayment.clinic_id == clinic.id,
                                                         BillingPayment.patient_id == patient.id)
                            .order_by(BillingPayment.received_at.desc())).all()
    superbills = session.exec(select(BillingSuperbill).where(BillingSuperbill.clinic_id == clinic.id,
                                                             BillingSuperbill.patient_id == patient.id)
                              .order_by(BillingSuperbill.number.desc())).all()
    packages = session.exec(select(BillingPackage).where(BillingPackage.clinic_id == clinic.id,
                                                         BillingPackage.patient_id == patient.id)).all()
    estimates = session.exec(select(BillingEstimate).where(BillingEstimate.clinic_id == clinic.id,
                                                           BillingEstimate.patient_id == patient.id)
                             .order_by(BillingEstimate.issued_at.desc())).all()
    providers = session.exec(select(Provider).where(Provider.clinic_id == clinic.id, Provider.active.is_(True))).all()
    return {
        "patient": patient, "invoices": invoices, "totals": totals,
        "balance": sum(t.balance for t in totals.values()), "drafts": drafts, "payments": payments,
        "superbills": superbills, "voids": service.voided_ids(session, clinic.id, [s.id for s in superbills]),
        "packages": packages, "estimates": estimates, "providers": providers,
        "overrun": service.estimate_overruns(session, clinic.id, [patient.id]).get(patient.id),
        "today": service.local_date(clinic, None), "modalities": list(Modality),
        "superbill_errors": [], "form_errors": {},
    }


@bp.get("/patients/<int:pid>")
@staff(*DESK)
def account(pid: int):
    session = get_session()
    patient = _patient(pid)
    audit.record("billing.account_view", object_type="patient", object_id=patient.id, patient_id=patient.id)
    return render_template("billing/account.html", **_account_context(session, patient))


def _account_error(patient: Patient, status: int = 422, **ctx):
    context = {**_account_context(get_session(), patient), **ctx}
    return render_template("billing/account.html", **context), status


@bp.post("/patients/<int:pid>/packages")
@staff(*DESK)
def sell_package(pid: int):
    session = get_session()
    patient = _patient(pid)
    name = clean_text(request.form.get("name"))[:120] or "Prepaid series"
    count = request.form.get("sessions", "").strip()
    method = request.form.get("method", "")
    problems = {}
    if not count.isdigit() or not 1 <= int(count) <= 50:
        problems["sessions"] = "Sessions: a whole number from 1 to 50."
    if method not in service.PAYMENT_METHODS:
        problems["method"] = "Choose how the package was paid: cash, card or check."
    try:
        amount = service.parse_amount(request.form.get("amount"), field="Package price")
    except BillingError as exc:
        problems["amount"] = exc.message
    if problems:
        return _account_error(patient, form_errors=problems)
    package = BillingPackage(clinic_id=g.clinic.id, patient_id=patient.id, name=name, sessions_total=int(count),
                             paid_cents=amount, method=method, created_at=service.utcnow(),
                             created_by_id=current_user.id)
    session.add(package)
    session.flush()
    audit.record("billing.package_sold", object_type="billing_package", object_id=package.id, patient_id=patient.id)
    flash(f"Package recorded: {count} sessions.")
    return redirect(url_for("billing.account", pid=patient.id))


# -- staff: invoices, payments, refunds, receipts -------------------------------------------

@bp.get("/invoices/<int:iid>")
@staff(*DESK)
def invoice(iid: int):
    return _invoice_page(_scoped(BillingInvoice, iid, "billing_invoice"))


def _invoice_page(inv: BillingInvoice, status: int = 200, error: str = "", form: dict | None = None):
    session = get_session()
    patient = _patient(inv.patient_id)
    lines = session.exec(select(BillingCharge).where(BillingCharge.invoice_id == inv.id,
                                                     BillingCharge.clinic_id == g.clinic.id)
                         .order_by(BillingCharge.service_date, BillingCharge.id)).all()
    payments = session.exec(select(BillingPayment).where(BillingPayment.invoice_id == inv.id,
                                                         BillingPayment.clinic_id == g.clinic.id)
                            .order_by(BillingPayment.received_at)).all()
    packages = session.exec(select(BillingPackage).where(BillingPackage.clinic_id == g.clinic.id,
                                                         BillingPackage.patient_id == patient.id)).all()
    totals = service.invoice_totals(session, [inv])[inv.id]
    if status == 200:
        audit.record("billing.invoice_view", object_type="billing_invoice", object_id=inv.id, patient_id=patient.id)
    overrun = service.estimate_overruns(session, g.clinic.id, [patient.id]).get(patient.id)
    return render_template("billing/invoice.html", inv=inv, patient=patient, lines=lines, payments=payments,
                           packages=[p for p in packages if p.sessions_used < p.sessions_total], totals=totals,
                           key=_key(), error=error, form=form or {}, overrun=overrun,
                           refundable=_refundable(payments)), status


def _refundable(payments: list[BillingPayment]) -> dict[int, int]:
    refunded: dict[int, int] = {}
    for p in payments:
        if p.kind == "refund" and p.refund_of_id:
            refunded[p.refund_of_id] = refunded.get(p.refund_of_id, 0) + p.amount_cents
    return {p.id: p.amount_cents - refunded.get(p.id, 0) for p in payments if p.kind == "payment"}


@bp.post("/invoices/<int:iid>/payments")
@staff(*DESK)
def pay(iid: int):
    session = get_session()
    inv = _scoped(BillingInvoice, iid, "billing_invoice")
    method = request.form.get("method", "")
    form = {"amount": request.form.get("amount", ""), "method": method, "reference": request.form.get("reference", "")}
    try:
        amount = None if method == "package" else service.parse_amount(request.form.get("amount"))
        seen = request.form.get("seen_balance", "")
        payment, replayed = service.record_payment(
            session, g.clinic.id, inv.id, amount_cents=amount, method=method,
            key=request.form.get("idempotency_key", ""), reference=clean_text(request.form.get("reference")),
            package_id=request.form.get("package_id", type=int), user_id=current_user.id,
            seen_balance=int(seen) if seen.isdigit() else None)
    except BillingError as exc:
        if exc.status == 404:
            _denied("billing_invoice", iid)
        return _invoice_page(inv, exc.status, exc.message, form)
    if replayed:
        flash("That payment was already recorded; it was not entered twice.")
    else:
        audit.record("billing.payment_recorded", object_type="billing_payment", object_id=payment.id,
                     patient_id=inv.patient_id)
        flash(f"Payment of {service._money(payment.amount_cents)} recorded.")
    return redirect(url_for("billing.invoice", iid=inv.id))


@bp.post("/payments/<int:pay_id>/refund")
@staff(*MANAGERS)
def refund(pay_id: int):
    session = get_session()
    original = _scoped(BillingPayment, pay_id, "billing_payment", kind="payment")
    inv = _scoped(BillingInvoice, original.invoice_id, "billing_invoice")
    try:
        amount = service.parse_amount(request.form.get("amount"), field="Refund")
        entry, replayed = service.record_refund(session, g.clinic.id, pay_id, amount_cents=amount,
                                                key=request.form.get("idempotency_key", ""), user_id=current_user.id)
    except BillingError as exc:
        return _invoice_page(inv, exc.status, exc.message)
    if not replayed:
        audit.record("billing.refund_recorded", object_type="billing_payment", object_id=entry.id,
                     patient_id=inv.patient_id)
        flash(f"Refund of {service._money(entry.amount_cents)} recorded.")
    return redirect(url_for("billing.invoice", iid=inv.id))


def _receipt(payment: BillingPayment):
    session = get_session()
    inv = session.get(BillingInvoice, payment.invoice_id)
    patient = session.get(Patient, payment.patient_id)
    totals = service.invoice_totals(session, [inv])[inv.id]
    html = service.pdf_html("billing/pdf/receipt.html", clinic=g.clinic, payment=payment, inv=inv, patient=patient,
                            totals=totals, received=service.local_date(g.clinic, payment.received_at))
    audit.record("billing.receipt_download", object_type="billing_payment", object_id=payment.id,
                 patient_id=payment.patient_id)
    return pdf_response(html_to_pdf(html, clinic=g.clinic), f"receipt-{payment.id:06d}.pdf")


@bp.get("/payments/<int:pay_id>/receipt.pdf")
@staff(*DESK)
def receipt(pay_id: int):
    return _receipt(_scoped(BillingPayment, pay_id, "billing_payment"))


# -- staff: superbills -------------------------------------------------------------------

@bp.post("/patients/<int:pid>/superbills")
@staff(*MANAGERS)
def issue_superbill(pid: int):
    session = get_session()
    patient = _patient(pid)
    scope = request.form.get("scope", "visit")
    if scope not in ("visit", "month", "year"):
        scope = "visit"
    try:
        day = parse_date(request.form.get("date", ""), field="Date of service")
        sb = service.issue_superbill(session, g.clinic, patient, scope, day, current_user.id,
                                     signer=_signer())
    except ValueError as exc:
        return _account_error(patient, superbill_errors=[(str(exc), "Issue superbill")])
    except SuperbillInvalid as exc:
        return _account_error(patient, superbill_errors=exc.errors)
    audit.record("billing.superbill_issued", object_type="billing_superbill", object_id=sb.id, patient_id=patient.id)
    after_commit("document_issued", clinic=g.clinic, document=sb)
    flash(f"Superbill {sb.label} issued.")
    return redirect(url_for("billing.superbill", sid=sb.id))


def _signer() -> str:
    """The rendering provider signs (box 31); a manager issuing it is named only if no provider is."""
    provider = get_session().exec(select(Provider).where(Provider.clinic_id == g.clinic.id,
                                                         Provider.user_id == current_user.id)).first()
    return provider.display_name if provider else ""


@bp.get("/superbills/<int:sid>")
@staff(*DESK)
def superbill(sid: int):
    session = get_session()
    sb = _scoped(BillingSuperbill, sid, "billing_superbill")
    patient = _patient(sb.patient_id)
    void = service.voided_ids(session, g.clinic.id, [sb.id]).get(sb.id)
    replaced_by = session.exec(select(BillingSuperbill).where(BillingSuperbill.replaces_id == sb.id,
                                                              BillingSuperbill.clinic_id == g.clinic.id)).first()
    links = session.exec(select(BillingPortalLink).where(BillingPortalLink.clinic_id == g.clinic.id,
                                                         BillingPortalLink.document_type == "superbill",
                                                         BillingPortalLink.document_id == sb.id)).all()
    audit.record("billing.superbill_view", object_type="billing_superbill", object_id=sb.id, patient_id=patient.id)
    return render_template("billing/superbill.html", sb=sb, patient=patient, void=void, replaced_by=replaced_by,
                           links=links, intact=service.pdf_intact(sb))


def _send_pdf(doc, object_type: str, filename: str):
    """Serve stored bytes only while they match their SHA-256; a mismatch is refused and audited."""
    if not service.pdf_intact(doc):
        audit.record_denied("billing.document_tampered", object_type=object_type, object_id=doc.id,
                            patient_id=doc.patient_id, detail="stored bytes do not match their SHA-256")
        abort(409, "This document no longer matches its fingerprint and cannot be served. The event was logged.")
    audit.record("billing.document_download", object_type=object_type, object_id=doc.id, patient_id=doc.patient_id)
    return pdf_response(doc.pdf, filename)


@bp.get("/superbills/<int:sid>.pdf")
@staff(*DESK)
def superbill_pdf(sid: int):
    sb = _scoped(BillingSuperbill, sid, "billing_superbill")
    return _send_pdf(sb, "billing_superbill", f"superbill-{sb.number:06d}.pdf")


@bp.post("/superbills/<int:sid>/void")
@staff(*MANAGERS)
def void_superbill(sid: int):
    """Void, and by default reissue from today's data as a new linked record."""
    session = get_session()
    sb = _scoped(BillingSuperbill, sid, "billing_superbill")
    patient = _patient(sb.patient_id)
    if service.voided_ids(session, g.clinic.id, [sb.id]):
        abort(409, "This superbill is already void.")
    reason = clean_text(request.form.get("reason"))[:300]
    if not reason:
        return _account_error(patient, superbill_errors=[("Give a reason for voiding the superbill.", sb.label)])
    session.add(BillingSuperbillVoid(clinic_id=g.clinic.id, superbill_id=sb.id, reason=reason,
                                     voided_at=service.utcnow(), voided_by_id=current_user.id))
    audit.record("billing.superbill_voided", object_type="billing_superbill", object_id=sb.id, patient_id=patient.id)
    if request.form.get("reissue"):
        try:
            new = service.issue_superbill(session, g.clinic, patient, sb.scope, sb.period_start, current_user.id,
                                          signer=_signer(), replaces_id=sb.id)
        except SuperbillInvalid as exc:
            return _account_error(patient, superbill_errors=exc.errors)
        audit.record("billing.superbill_issued", object_type="billing_superbill", object_id=new.id,
                     patient_id=patient.id, detail=f"reissue of {sb.id}")
        after_commit("document_issued", clinic=g.clinic, document=new)
        flash(f"{sb.label} voided and reissued as {new.label}.")
        return redirect(url_for("billing.superbill", sid=new.id))
    flash(f"{sb.label} voided.")
    return redirect(url_for("billing.superbill", sid=sb.id))


@bp.post("/superbills/<int:sid>/send-link")
@staff(*DESK)
def send_link(sid: int):
    """Tell the patient the superbill waits in the portal, instead of mailing an attachment."""
    sb = _scoped(BillingSuperbill, sid, "billing_superbill")
    link = BillingPortalLink(clinic_id=g.clinic.id, patient_id=sb.patient_id, document_type="superbill",
                             document_id=sb.id, sent_at=service.utcnow(), sent_by_id=current_user.id)
    get_session().add(link)
    get_session().flush()
    audit.record("billing.portal_link_sent", object_type="billing_superbill", object_id=sb.id,
                 patient_id=sb.patient_id)
    flash("Portal link recorded: the patient can download this superbill from the portal.")
    return redirect(url_for("billing.superbill", sid=sb.id))


# -- staff: Good Faith Estimates ------------------------------------------------------------

@bp.post("/patients/<int:pid>/estimates")
@staff(*MANAGERS)
def issue_estimate(pid: int):
    session = get_session()
    clinic = g.clinic
    patient = _patient(pid)
    f = request.form
    problems = {}
    provider = session.exec(select(Provider).where(Provider.id == f.get("provider_id", type=int, default=-1),
                                                   Provider.clinic_id == clinic.id)).first()
    if provider is None:
        problems["provider_id"] = "Choose the provider who will treat the patient."
    try:
        modality = Modality(f.get("modality", ""))
    except ValueError:
        problems["modality"] = "Choose the treatment."
        modality = None
    count = f.get("sessions", "").strip()
    if not count.isdigit() or not 1 <= int(count) <= 24:
        problems["sessions"] = "Sessions: a whole number from 1 to 24."
    dose_raw = f.get("dose_mg", "").strip()
    try:
        dose = float(dose_raw) if dose_raw else None
        if dose is not None and not 0 < dose <= 1000:
            raise ValueError
    except ValueError:
        problems["dose_mg"] = "Expected dose: milligrams between 1 and 1000, or leave it empty."
        dose = None
    evaluation = f.get("evaluation_code", "")
    if evaluation not in ("", "90791", "90792"):
        problems["evaluation_code"] = "Choose 90791, 90792 or no evaluation."
    today = service.local_date(clinic, None)
    try:
        first = parse_date(f.get("first_date", ""), field="First session", not_before=today)
    except ValueError as exc:
        problems["first_date"] = str(exc)
    if problems:
        return _account_error(patient, form_errors=problems)
    data = service.build_estimate(session, clinic, patient, provider, modality=modality, sessions=int(count),
                                  dose_mg=dose, minutes=50 if modality == Modality.iv_ketamine else None,
                                  evaluation_code=evaluation, first_service=first,
                                  requested=bool(f.get("requested")),
                                  settings=settings_for(session, clinic, "billing"), today=today)
    est = service.issue_estimate(session, clinic, patient, data, current_user.id)
    audit.record("billing.estimate_issued", object_type="billing_estimate", object_id=est.id, patient_id=patient.id)
    after_commit("document_issued", clinic=clinic, document=est)
    flash(f"Good Faith Estimate issued; give it to the patient by {est.due_date.strftime('%m/%d/%Y')}.")
    return redirect(url_for("billing.account", pid=patient.id))


@bp.get("/estimates/<int:eid>.pdf")
@staff(*DESK)
def estimate_pdf(eid: int):
    est = _scoped(BillingEstimate, eid, "billing_estimate")
    return _send_pdf(est, "billing_estimate", f"good-faith-estimate-{est.id:06d}.pdf")


# -- the patient portal ------------------------------------------------------------------

@bp.get("/portal/")
@patient_only
def portal_home():
    session = get_session()
    patient = current_patient()
    clinic = g.clinic
    invoices = session.exec(select(BillingInvoice).where(BillingInvoice.clinic_id == clinic.id,
                                                         BillingInvoice.patient_id == patient.id)
                            .order_by(BillingInvoice.number.desc())).all()
    totals = service.invoice_totals(session, list(invoices))
    payments = session.exec(select(BillingPayment).where(BillingPayment.clinic_id == clinic.id,
                                                         BillingPayment.patient_id == patient.id)
                            .order_by(BillingPayment.received_at.desc())).all()
    superbills = session.exec(select(BillingSuperbill).where(BillingSuperbill.clinic_id == clinic.id,
                                                             BillingSuperbill.patient_id == patient.id)
                              .order_by(BillingSuperbill.number.desc())).all()
    estimates = session.exec(select(BillingEstimate).where(BillingEstimate.clinic_id == clinic.id,
                                                           BillingEstimate.patient_id == patient.id)
                             .order_by(BillingEstimate.issued_at.desc())).all()
    packages = session.exec(select(BillingPackage).where(BillingPackage.clinic_id == clinic.id,
                                                         BillingPackage.patient_id == patient.id)).all()
    voids = service.voided_ids(session, clinic.id, [s.id for s in superbills])
    audit.record("billing.portal_view", object_type="patient", object_id=patient.id, patient_id=patient.id)
    return render_template("billing/portal.html", patient=patient, invoices=invoices, totals=totals,
                           payments=payments, superbills=superbills, voids=voids, estimates=estimates,
                           packages=packages, balance=sum(t.balance for t in totals.values()))


def _own(model, object_id: int, object_type: str):
    """The signed-in patient's own row, or 404 with a denied-access audit row."""
    patient = current_patient()
    return _scoped(model, object_id, object_type, patient_id=patient.id)


@bp.get("/portal/superbills/<int:sid>.pdf")
@patient_only
def portal_superbill(sid: int):
    sb = _own(BillingSuperbill, sid, "billing_superbill")
    return _send_pdf(sb, "billing_superbill", f"superbill-{sb.number:06d}.pdf")


@bp.get("/portal/receipts/<int:pay_id>.pdf")
@patient_only
def portal_receipt(pay_id: int):
    return _receipt(_own(BillingPayment, pay_id, "billing_payment"))


@bp.get("/portal/estimates/<int:eid>.pdf")
@patient_only
def portal_estimate(eid: int):
    est = _own(BillingEstimate, eid, "billing_estimate")
    return _send_pdf(est, "billing_estimate", f"good-faith-estimate-{est.id:06d}.pdf")

