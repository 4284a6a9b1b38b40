"""Staff: the billing overview, the fee schedule with its drug NDCs, and reviewing a session's charges."""
from __future__ import annotations

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from sqlmodel import or_, select

from core import audit
from core.validators import db_int
from core.auth import staff
from core.db import get_session
from core.models import Patient, SessionStatus, TreatmentSession
from core.plugin_state import save_settings, settings_for
from plugins.billing import charges as rules
from plugins.billing import ndc
from plugins.billing.errors import BillingError
from plugins.billing.estimates import estimate_overruns
from plugins.billing.models import BillingCharge, BillingEstimate, BillingPackage
from plugins.billing.money import invoice_label, local_date, parse_amount
from plugins.billing.payments import aging
from plugins.billing.tables import drug_products, fees_by_code
from plugins.billing.views import bp
from plugins.billing.views.common import DESK, MANAGERS, names, patient_of, scoped
from plugins.billing.views.forms import AddLineForm, ChargesActionForm, charges_form, fees_form, ndc_value


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
    rows, buckets = aging(session, clinic.id, local_date(clinic, None))
    overruns = estimate_overruns(session, clinic.id)
    patients = session.exec(select(Patient).where(Patient.clinic_id == clinic.id, Patient.archived.is_(False), or_(
        Patient.id.in_(select(BillingCharge.patient_id).where(BillingCharge.clinic_id == clinic.id)),
        Patient.id.in_(select(BillingPackage.patient_id).where(BillingPackage.clinic_id == clinic.id)),
        Patient.id.in_(select(BillingEstimate.patient_id).where(BillingEstimate.clinic_id == clinic.id))))
        .order_by(Patient.legal_last_name, Patient.legal_first_name)).all()
    audit.record("billing.overview", object_type="clinic", object_id=clinic.id)
    return render_template("billing/index.html", review=list(review.values()), aging=rows, buckets=buckets,
                           names=names({inv.patient_id for inv, _t, _a in rows}), overruns=overruns,
                           over_names=names(set(overruns)), patients=patients)


@bp.get("/account")
@staff(*DESK)
def account_jump():
    """The patient picker on the overview (an opaque id, never a name, in the URL)."""
    pid = request.args.get("patient_id", type=db_int)
    if pid is None:
        return redirect(url_for("billing.index"))
    return redirect(url_for("billing.account", pid=patient_of(pid).id))


# -- the fee schedule, the drug products' NDCs and the billing options ----------------------------

def _fees_page(rows, products, errors, settings, status=200):
    return render_template("billing/fees.html", fees=rows, products=products, errors=errors, settings=settings,
                           declared=current_app.extensions["glia"].settings["billing"],
                           units=ndc.rules()["unit_qualifiers"]), status


@bp.route("/fees", methods=["GET", "POST"])
@staff(*MANAGERS)
def fees():
    session = get_session()
    clinic = g.clinic
    rows = sorted(fees_by_code(session, clinic.id).values(), key=lambda f: (f.kind != "service", f.code))
    products = drug_products(session, clinic.id)
    settings = settings_for(session, clinic, "billing")
    if request.method == "GET":
        return _fees_page(rows, products, {}, settings)
    units = ndc.rules()["unit_qualifiers"]
    form = fees_form(rows, products, units)
    errors: dict[str, str] = {}
    for fee in rows:
        price = form[f"price_{fee.code}"]
        try:
            if price.posted:
                fee.price_cents = parse_amount(price.data, field=price.label.text)
        except BillingError as exc:
            errors[fee.code] = exc.message
        session.add(fee)
    for p in products:
        _apply_product(p, form, units, errors)
        session.add(p)
    choice = form.esketamine_billing.data if form.esketamine_billing.posted else settings["esketamine_billing"]
    visit = form.office_visit_code.data if form.office_visit_code.posted else settings["office_visit_code"]
    declared = current_app.extensions["glia"].settings["billing"]
    if choice not in declared["esketamine_billing"].choices or visit not in declared["office_visit_code"].choices:
        errors["settings"] = "Choose one of the listed billing options."
    if errors:
        return _fees_page(rows, products, errors, settings, 422)
    save_settings(session, clinic, "billing", {"esketamine_billing": choice, "office_visit_code": visit})
    audit.record("billing.fees_changed", object_type="clinic", object_id=clinic.id)
    flash("Fee schedule saved.")
    return redirect(url_for("billing.fees"))


def _apply_product(p, form, units, errors: dict) -> None:
    """NDC, unit and strength of one stocked drug (fields left out of the form stay as they are).

    A placeholder NDC is refused here, as it is at issue time.
    """
    key = f"product_{p.id}"
    ndc_field, unit, strength = form[f"{key}_ndc"], form[f"{key}_unit"], form[f"{key}_mg"]
    if ndc_field.raw_data:
        try:
            if not ndc_field.validate(form):
                raise BillingError(ndc_field.errors[0])
            p.ndc = ndc_value(ndc_field)
        except BillingError as exc:
            errors[ndc_field.name] = f"{p.label}: {exc.message}"
    if unit.raw_data:
        if unit.validate(form):
            p.unit = unit.data
        else:
            errors[unit.name] = f"{p.label}: choose the NDC unit ({', '.join(units)})."
    if strength.raw_data:
        if strength.validate(form):
            p.mg_per_unit = strength.number
        else:
            errors[strength.name] = f"{p.label}: {strength.errors[0]}"


# -- reviewing the charges of one session --------------------------------------------------------

def _charges_page(treatment, patient, errors=None, add_errors=None, status=200, top_error=""):
    session = get_session()
    lines = session.exec(select(BillingCharge).where(BillingCharge.clinic_id == g.clinic.id,
                                                     BillingCharge.treatment_id == treatment.id)
                         .order_by(BillingCharge.id)).all()
    return render_template("billing/charges.html", treatment=treatment, patient=patient, lines=lines,
                           drafts=[c for c in lines if c.status == "draft"],
                           diagnoses=rules.active_diagnoses(session, g.clinic.id, patient.id)[:12],
                           errors=errors or {}, add_errors=add_errors or {}, top_error=top_error,
                           codes=sorted(fees_by_code(session, g.clinic.id)),
                           products={p.id: p for p in drug_products(session, g.clinic.id)}), status


@bp.route("/treatments/<int:tid>/charges", methods=["GET", "POST"])
@staff(*MANAGERS)
def charges(tid: int):
    session = get_session()
    clinic = g.clinic
    treatment = scoped(TreatmentSession, tid, "treatment_session")
    patient = patient_of(treatment.patient_id)
    if request.method == "GET":
        audit.record("billing.charges_view", object_type="treatment_session", object_id=tid, patient_id=patient.id)
        return _charges_page(treatment, patient)
    action = ChargesActionForm().action.data
    if action == "draft":
        if treatment.status != SessionStatus.discharged:
            abort(409, "Charges come from a discharged session.")
        rules.draft_charges(session, clinic, treatment, settings_for(session, clinic, "billing"))
        audit.record("billing.charges_drafted", object_type="treatment_session", object_id=tid, patient_id=patient.id)
        return redirect(url_for("billing.charges", tid=tid))
    drafts = session.exec(select(BillingCharge).where(BillingCharge.clinic_id == clinic.id,
                                                      BillingCharge.treatment_id == tid,
                                                      BillingCharge.status == "draft")
                          .order_by(BillingCharge.id)).all()
    n_dx = min(12, len(rules.active_diagnoses(session, clinic.id, patient.id)))
    products = drug_products(session, clinic.id)
    form = charges_form(drafts)
    errors: dict[int, str] = {}
    kept = []
    for c in drafts:
        if form[f"remove_{c.id}"].data:
            session.delete(c)
            continue
        problem = _apply_line_edits(c, form, n_dx)
        if problem:
            errors[c.id] = problem
        rules.fill_drug(c, products)
        session.add(c)
        kept.append(c)
    if errors:
        return _charges_page(treatment, patient, errors, status=422)
    session.flush()
    if action == "add":
        add = AddLineForm(codes=fees_by_code(session, clinic.id))
        if not add.validate():
            return _charges_page(treatment, patient, add_errors=add.messages, status=422)
        code = add.add_code.data
        rules.add_line(session, clinic, treatment, code, add.add_units.number)
        audit.record("billing.charges_reviewed", object_type="treatment_session", object_id=tid, patient_id=patient.id,
                     detail=f"added {code}")
        return redirect(url_for("billing.charges", tid=tid))
    audit.record("billing.charges_reviewed", object_type="treatment_session", object_id=tid, patient_id=patient.id)
    if action == "invoice":
        try:
            invoice = rules.create_invoice(session, clinic.id, patient.id, [c.id for c in kept], current_user.id)
        except rules.LinesInvalid as exc:
            found: dict[int, str] = {}
            for c, message in exc.problems:
                found[c.id] = f"{found[c.id]} {message}" if c.id in found else message[:1].upper() + message[1:]
            return _charges_page(treatment, patient, found, status=422,
                                 top_error="Not invoiced: some lines do not meet the claim rules yet.")
        except BillingError as exc:
            abort(exc.status, exc.message)
        audit.record("billing.invoice_issued", object_type="billing_invoice", object_id=invoice.id,
                     patient_id=patient.id)
        flash(f"Invoice {invoice_label(invoice.number)} issued.")
        return redirect(url_for("billing.invoice", iid=invoice.id))
    flash("Charges saved.")
    return redirect(url_for("billing.charges", tid=tid))


def _apply_line_edits(c: BillingCharge, form, n_dx: int) -> str | None:
    """Units, unit price, pointers, modifiers and dose of one draft line; returns a problem or None."""
    def posted(name: str) -> str:
        return form[f"{name}_{c.id}"].data

    units_raw = posted("units")
    if not units_raw.isdigit() or not 1 <= int(units_raw) <= 999:
        return f"{c.code}: units must be a whole number from 1 to 999."
    try:
        price = parse_amount(posted("price"), field=f"{c.code} unit price")
    except BillingError as exc:
        return exc.message
    pointers = "".join(posted("pointers").upper().split()).replace(",", "")
    valid = rules.LETTERS[:n_dx]
    if not 1 <= len(pointers) <= 4 or any(p not in valid for p in pointers) or len(set(pointers)) != len(pointers):
        listed = f"A-{valid[-1]}" if valid else "none: add a diagnosis on the chart"
        return f"{c.code}: give 1 to 4 different diagnosis letters from the list ({listed})."
    modifiers = " ".join(posted("modifiers").upper().split())
    if len(modifiers.split()) > 4 or any(len(m) != 2 or not m.isalnum() for m in modifiers.split()):
        return f"{c.code}: up to 4 two-character modifiers, such as 25."
    dose = posted("dose")[:20]
    if c.code in rules.DRUG_CODES:
        mg = rules.dose_mg(dose)
        if mg is None or not 0 < mg <= 10_000:
            return f"{c.code}: the dose in mg, such as 35 mg."
        dose = f"{mg:g} mg"
    c.units, c.unit_price_cents, c.pointers, c.modifiers, c.dose = int(units_raw), price, pointers, modifiers, dose
    c.amount_cents = c.units * c.unit_price_cents
    return None
