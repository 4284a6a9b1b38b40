"""Billing as users meet it: a session becomes charges, an invoice, payments and a superbill PDF."""
from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from pypdf import PdfReader
from sqlalchemy import text
from sqlmodel import func, select

from core import workflow
from core.db import get_session, new_session
from core.hooks import relay
from core.models import (AuditEvent, Clinic, ImmutableRecordError, Patient, PluginState, SessionStatus,
                         TreatmentSession, utcnow)
from plugins.billing.models import (BillingCharge, BillingEstimate, BillingInvoice, BillingPayment,
                                    BillingPortalLink, BillingSuperbill, BillingVoid)
from tests.support import login, post


def complete_session(app, mrn="ST1000", *, minutes=50, dose=35.0, modality=None):
    """Discharge the patient's next session in the database and fire treatment_completed, as core does."""
    with app.test_request_context():
        s = get_session()
        patient = s.exec(select(Patient).where(Patient.mrn == mrn)).one()
        clinic = s.get(Clinic, patient.clinic_id)
        t = s.exec(select(TreatmentSession).where(TreatmentSession.patient_id == patient.id,
                                                  TreatmentSession.status != SessionStatus.discharged)).first()
        if t is None:
            base = s.exec(select(TreatmentSession).where(TreatmentSession.patient_id == patient.id)).first()
            t = TreatmentSession(clinic_id=clinic.id, patient_id=patient.id, provider_id=base.provider_id,
                                 modality=base.modality, scheduled_at=utcnow())
        start = utcnow() - timedelta(hours=2)
        t.modality = modality or t.modality
        t.status, t.started_at, t.monitoring_at, t.discharged_at = (SessionStatus.discharged, start,
                                                                     start + timedelta(minutes=minutes),
                                                                     start + timedelta(minutes=minutes + 40))
        t.dose_mg, t.duration_minutes = dose, minutes
        with workflow.importing(s):  # a session that happened, written as history (not through the gate)
            s.add(t)
        s.commit()
        relay(clinic).fire("treatment_completed", clinic=clinic, treatment=t)
        s.commit()
        return t.id, patient.id


def fresh(db):
    """End the read snapshot to see what the app committed; stay a reader (no SQLite write lock)."""
    db.rollback()
    db.connection(execution_options={"sqlite_begin": "DEFERRED"})


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(p.extract_text() for p in reader.pages)


def codes(db, tid):
    fresh(db)
    return [(c.code, c.units) for c in db.exec(select(BillingCharge).where(BillingCharge.treatment_id == tid)
                                               .order_by(BillingCharge.id)).all()]


def test_session_becomes_draft_charges_by_modality(app, db):
    tid, _ = complete_session(app, minutes=100, dose=35.0)
    assert codes(db, tid) == [("96365", 1), ("96366", 1), ("J3490", 1)]
    line = db.exec(select(BillingCharge).where(BillingCharge.treatment_id == tid, BillingCharge.code == "J3490")).one()
    assert line.ndc and line.dose == "35 mg" and line.status == "draft"

    tid, _ = complete_session(app, "HA1000", dose=84.0)  # esketamine: a visit plus J0013 per mg
    assert codes(db, tid) == [("99213", 1), ("J0013", 84)]

    with app.app_context():
        w = new_session(app.extensions["glia"].engine)
        clinic = w.exec(select(Clinic).where(Clinic.slug == "harbor")).one()
        w.merge(PluginState(clinic_id=clinic.id, plugin="billing", enabled=True,
                            settings={"esketamine_billing": "g_codes"}))
        w.commit()
        w.close()
    tid, _ = complete_session(app, "HA1001", dose=56.0)
    assert codes(db, tid) == [("G2082", 1)]


def _invoice_from_draft(app, client, tid):
    resp = post(app, client, f"/billing/treatments/{tid}/charges", {"action": "invoice"})
    assert resp.status_code == 302, resp.text
    return int(resp.headers["Location"].rsplit("/", 1)[1])


def _pay_form(client, iid):
    html = client.get(f"/billing/invoices/{iid}").text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)
    seen = re.search(r'name="seen_balance" value="(\d+)"', html).group(1)
    return key, seen


def payments(db, iid):
    fresh(db)
    return db.exec(select(func.count()).select_from(BillingPayment).where(BillingPayment.invoice_id == iid)).one()


def test_manager_invoices_pays_and_issues_superbill(app, client, db):
    tid, pid = complete_session(app)
    login(app, client, "manager")
    page = client.get("/billing/")
    assert page.status_code == 200 and f"/billing/treatments/{tid}/charges" in page.text
    # bad pointer on review: 422, nothing saved
    line = db.exec(select(BillingCharge).where(BillingCharge.treatment_id == tid)).first()
    bad = post(app, client, f"/billing/treatments/{tid}/charges", {"action": "invoice", f"pointers_{line.id}": "Z"})
    assert bad.status_code == 422 and "diagnosis letters" in bad.text
    assert db.exec(select(func.count()).select_from(BillingInvoice).where(BillingInvoice.patient_id == pid)).one() == 0

    iid = _invoice_from_draft(app, client, tid)
    fresh(db)
    inv = db.get(BillingInvoice, iid)
    assert inv.total_cents == 50_000
    key, seen = _pay_form(client, iid)
    for amount, message in [("-5", "more than zero"), ("0", "more than zero"), ("NaN", "at most two decimals"),
                            ("Infinity", "at most two decimals"), ("1e9", "at most two decimals"),
                            ("0.001", "at most two decimals"), ("1,000", "without commas"),
                            ("5000000", "larger than any fee"), ("500.01", "more than the balance")]:
        resp = post(app, client, f"/billing/invoices/{iid}/payments",
                    {"amount": amount, "method": "card", "idempotency_key": key, "seen_balance": seen})
        assert resp.status_code == 422, amount
        assert message in resp.text, amount
    assert payments(db, iid) == 0

    form = {"amount": "200.00", "method": "card", "idempotency_key": key, "seen_balance": seen}
    assert post(app, client, f"/billing/invoices/{iid}/payments", form).status_code == 302
    assert post(app, client, f"/billing/invoices/{iid}/payments", form).status_code == 302  # double submit
    assert payments(db, iid) == 1
    changed = post(app, client, f"/billing/invoices/{iid}/payments", {**form, "amount": "250.00"})
    assert changed.status_code == 422 and "different details" in changed.text
    assert payments(db, iid) == 1

    # only paid lines go on a superbill
    today = db.get(BillingCharge, line.id).service_date.isoformat()
    early = post(app, client, f"/billing/patients/{pid}/superbills", {"date": today, "scope": "visit"})
    assert early.status_code == 422 and "no paid services" in early.text
    key, seen = _pay_form(client, iid)
    post(app, client, f"/billing/invoices/{iid}/payments",
         {"amount": "300.00", "method": "check", "reference": "1042", "idempotency_key": key, "seen_balance": seen})
    resp = post(app, client, f"/billing/patients/{pid}/superbills", {"date": today, "scope": "visit"})
    assert resp.status_code == 302
    sid = int(resp.headers["Location"].rsplit("/", 1)[1])
    fresh(db)
    sb = db.get(BillingSuperbill, sid)
    dl = client.get(f"/billing/superbills/{sid}.pdf")
    assert dl.mimetype == "application/pdf"
    assert dl.headers["Content-Disposition"] == f'attachment; filename="superbill-{sb.label}.pdf"'
    assert dl.headers["Cache-Control"] == "no-store" and dl.headers["X-Content-Type-Options"] == "nosniff"
    assert_superbill_fields(pdf_text(dl.data), db, pid)
    assert len(PdfReader(io.BytesIO(dl.data)).pages) == 1

    # receipts
    pay = db.exec(select(BillingPayment).where(BillingPayment.invoice_id == iid)).first()
    receipt = client.get(f"/billing/payments/{pay.id}/receipt.pdf")
    assert receipt.status_code == 200 and "$200.00" in pdf_text(receipt.data)


def assert_superbill_fields(text_, db, pid):
    """Every field DOMAIN.md requires, with its CMS-1500 box."""
    patient = db.get(Patient, pid)
    clinic = db.get(Clinic, patient.clinic_id)
    flat = " ".join(text_.split())
    for needle in [clinic.name, clinic.phone, clinic.ein, clinic.npi, "(33a)", "(25)", "(32)", "(31)", "(24J)",
                   patient.legal_first_name, patient.legal_last_name, patient.dob.strftime("%m/%d/%Y"),
                   patient.address_line1, "(1a)", "(2)", "(3)", "(5)", "(box 21)", "(24A)", "(24B)", "(24D)",
                   "(24E)", "(24F)", "(24G)", "96365", "J3490", "N499999999910 ML0.7", "35 mg", "Total charges (28)",
                   "Amount paid (29)", "Balance due", "Accept assignment (27)", "No", "Signature of provider",
                   "$500.00", "1000000012"]:
        assert needle.lower() in flat.lower(), needle
    assert re.search(r"F\d\d\.[0-9A-Z]+", flat)


def test_superbill_validation_says_what_to_fix(app, client, db):
    with app.app_context():
        w = new_session(app.extensions["glia"].engine)
        clinic = w.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
        clinic.ein = ""
        clinic.npi = "2000000011"  # bad check digit
        w.add(clinic)
        w.commit()
        w.close()
    sb = db.exec(select(BillingSuperbill).join(Clinic, Clinic.id == BillingSuperbill.clinic_id)
                 .where(Clinic.slug == "stillwater")).first()
    login(app, client, "manager")
    before = db.exec(select(func.count()).select_from(BillingSuperbill)).one()
    resp = post(app, client, f"/billing/patients/{sb.patient_id}/superbills",
                {"date": sb.period_start.isoformat(), "scope": "month"})
    assert resp.status_code == 422
    assert "The clinic has no EIN (tax ID, box 25): add it in Clinic settings." in resp.text
    assert "billing NPI (box 33a)" in resp.text and "check digit" in resp.text
    fresh(db)
    assert db.exec(select(func.count()).select_from(BillingSuperbill)).one() == before


def test_issued_superbill_is_immutable_and_voids_by_reissue(app, client, db):
    sb = db.exec(select(BillingSuperbill).order_by(BillingSuperbill.id)).first()
    engine = app.extensions["glia"].engine
    w = new_session(engine)
    row = w.get(BillingSuperbill, sb.id)
    row.data = {**row.data, "total_cents": 1}
    with pytest.raises(ImmutableRecordError):
        w.flush()
    w.rollback()
    with pytest.raises(Exception, match="append-only"):
        w.execute(text("UPDATE billing_superbill SET sha256 = 'x' WHERE id = :i"), {"i": sb.id})
    w.rollback()
    w.close()

    clinic = db.get(Clinic, sb.clinic_id)
    login(app, client, "manager" if clinic.slug == "stillwater" else "harbor.manager")
    resp = post(app, client, f"/billing/superbills/{sb.id}/void", {"confirm": "yes", "reason": "Wrong pointer", "reissue": "1"})
    assert resp.status_code == 302
    fresh(db)
    new = db.exec(select(BillingSuperbill).where(BillingSuperbill.replaces_id == sb.id)).one()
    assert new.number != sb.number and new.sha256 != ""
    assert db.exec(select(BillingVoid).where(BillingVoid.document_type == "superbill",
                                             BillingVoid.document_id == sb.id)).one()
    assert db.get(BillingSuperbill, sb.id).sha256 == sb.sha256  # the old one stays as it was
    actions = db.exec(select(AuditEvent.action).where(AuditEvent.object_type == "billing_superbill")).all()
    assert "billing.superbill_voided" in actions and "billing.superbill_issued" in actions
    again = post(app, client, f"/billing/superbills/{sb.id}/void", {"confirm": "yes", "reason": "twice"})
    assert again.status_code == 409


def _portal_patient(db, slug="stillwater"):
    return db.exec(select(Patient).join(Clinic, Clinic.id == Patient.clinic_id)
                   .where(Clinic.slug == slug, Patient.user_id.is_not(None))).one()


def test_portal_shows_own_documents_and_hides_others(app, client, db):
    me = _portal_patient(db)
    other = db.exec(select(BillingSuperbill).where(BillingSuperbill.patient_id != me.id)).first()
    # give the portal patient a superbill through the real flow
    tid, _ = complete_session(app)
    mgr = app.test_client()
    login(app, mgr, "manager")
    iid = _invoice_from_draft(app, mgr, tid)
    key, seen = _pay_form(mgr, iid)
    post(app, mgr, f"/billing/invoices/{iid}/payments", {"amount": "500.00", "method": "cash",
                                                         "idempotency_key": key, "seen_balance": seen})
    fresh(db)
    day = db.exec(select(BillingCharge.service_date).where(BillingCharge.treatment_id == tid)).first()
    sid = int(post(app, mgr, f"/billing/patients/{me.id}/superbills", {"date": day.isoformat()})
              .headers["Location"].rsplit("/", 1)[1])
    assert post(app, mgr, f"/billing/superbills/{sid}/send-link").status_code == 302
    fresh(db)
    assert db.exec(select(BillingPortalLink).where(BillingPortalLink.document_id == sid)).one()

    login(app, client, "patient")
    home = client.get("/billing/portal/")
    assert home.status_code == 200
    assert f"/billing/portal/superbills/{sid}.pdf" in home.text and "Good Faith Estimate" in home.text
    own = client.get(f"/billing/portal/superbills/{sid}.pdf")
    assert own.status_code == 200 and own.headers["Content-Disposition"].startswith("attachment; filename=\"superbill-")
    assert me.legal_last_name in pdf_text(own.data)

    pay = db.exec(select(BillingPayment).where(BillingPayment.patient_id != me.id)).first()
    denied_before = db.exec(select(func.count()).select_from(AuditEvent).where(AuditEvent.outcome == "denied")).one()
    for url in [f"/billing/portal/superbills/{other.id}.pdf", f"/billing/portal/receipts/{pay.id}.pdf",
                "/billing/portal/superbills/999999.pdf", f"/billing/superbills/{sid}.pdf"]:
        resp = client.get(url)
        assert resp.status_code in (403, 404), url
        assert b"%PDF" not in resp.data
    fresh(db)
    denied = db.exec(select(AuditEvent).where(AuditEvent.outcome == "denied").order_by(AuditEvent.id)).all()
    assert len(denied) >= denied_before + 3
    assert me.legal_last_name not in " ".join(e.detail + e.object_id for e in denied)


def test_staff_of_another_clinic_and_wrong_roles_are_refused(app, client, db):
    sb = db.exec(select(BillingSuperbill).join(Clinic, Clinic.id == BillingSuperbill.clinic_id)
                 .where(Clinic.slug == "stillwater")).first()
    login(app, client, "harbor.manager")
    for url in [f"/billing/superbills/{sb.id}", f"/billing/superbills/{sb.id}.pdf",
                f"/billing/patients/{sb.patient_id}"]:
        assert client.get(url).status_code == 404, url
    clinician = app.test_client()
    login(app, clinician, "clinician")
    assert clinician.get("/billing/").status_code == 403
    desk = app.test_client()
    login(app, desk, "frontdesk")
    assert desk.get("/billing/").status_code == 200
    pay = db.exec(select(BillingPayment).where(BillingPayment.clinic_id == sb.clinic_id)).first()
    assert post(app, desk, f"/billing/payments/{pay.id}/refund", {"confirm": "yes", "amount": "1.00", "idempotency_key": "k"}).status_code == 403


def test_billing_pages_show_no_medication_list(app, client, db):
    from core.models import Medication

    sb = db.exec(select(BillingSuperbill).join(Clinic, Clinic.id == BillingSuperbill.clinic_id)
                 .where(Clinic.slug == "stillwater")).first()
    meds = db.exec(select(Medication.name).where(Medication.patient_id == sb.patient_id)).all()
    login(app, client, "manager")
    pages = [client.get(f"/billing/patients/{sb.patient_id}").text, client.get("/billing/").text,
             client.get(f"/billing/superbills/{sb.id}").text]
    for name in meds:
        assert all(name not in page for page in pages), name


def test_disabled_billing_answers_404(app, client, db):
    with app.app_context():
        w = new_session(app.extensions["glia"].engine)
        clinic = w.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
        w.merge(PluginState(clinic_id=clinic.id, plugin="billing", enabled=False, settings={}))
        w.commit()
        w.close()
    login(app, client, "manager")
    assert client.get("/billing/").status_code == 404
    assert ">Billing<" not in client.get("/").text
    patient = app.test_client()
    login(app, patient, "patient")
    assert patient.get("/billing/portal/").status_code == 404


def test_good_faith_estimate_and_overrun_warning(app, client, db):
    me = _portal_patient(db)
    login(app, client, "manager")
    provider_id = db.exec(select(TreatmentSession.provider_id).where(TreatmentSession.clinic_id == me.clinic_id)).first()
    bad = post(app, client, f"/billing/patients/{me.id}/estimates",
               {"provider_id": provider_id, "modality": "iv_ketamine", "sessions": "0", "first_date": "2026-02-30"})
    assert bad.status_code == 422 and "whole number from 1 to 24" in bad.text and "real date" in bad.text
    est_before = db.exec(select(func.count()).select_from(BillingEstimate)).one()
    from plugins.billing.service import add_business_days, local_date

    clinic = db.get(Clinic, me.clinic_id)
    first = add_business_days(local_date(clinic, None), 12)
    resp = post(app, client, f"/billing/patients/{me.id}/estimates",
                {"provider_id": provider_id, "modality": "iv_ketamine", "sessions": "1", "dose_mg": "35",
                 "evaluation_code": "", "first_date": first.isoformat()})
    assert resp.status_code == 302
    fresh(db)
    est = db.exec(select(BillingEstimate).order_by(BillingEstimate.id.desc())).first()
    assert db.exec(select(func.count()).select_from(BillingEstimate)).one() == est_before + 1
    assert est.due_date == add_business_days(local_date(clinic, None), 3)
    flat = " ".join(pdf_text(client.get(f"/billing/estimates/{est.id}.pdf").data).split())
    for needle in [me.legal_last_name, me.dob.strftime("%m/%d/%Y"), "96365", "J3490", "$500.00", clinic.ein,
                   clinic.npi, "not a contract", "dispute", "$400", "120", "Services scheduled separately",
                   est.due_date.strftime("%m/%d/%Y")]:
        assert needle.lower() in flat.lower(), needle
    # bill the patient well above the $500 estimate: the manager is warned
    for _ in range(2):
        tid, _ = complete_session(app)
        with app.app_context():  # the drafts' dates fall before the estimated first date: move them into the period
            w = new_session(app.extensions["glia"].engine)
            for c in w.exec(select(BillingCharge).where(BillingCharge.treatment_id == tid)).all():
                c.service_date = first
                w.add(c)
            w.commit()
            w.close()
        _invoice_from_draft(app, client, tid)
    page = client.get(f"/billing/patients/{me.id}").text
    assert "above the $400 dispute threshold" in page or "at or above the $400" in page


def test_fee_schedule_edit(app, client, db):
    """Prices and the drug products' NDCs: typos and placeholders refused with nothing saved, then saved."""
    from plugins.billing.models import BillingDrugProduct

    login(app, client, "manager")
    page = client.get("/billing/fees")
    assert "96365" in page.text and "IV infusion, first hour" in page.text and "50458-0028-02" in page.text
    clinic = db.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
    vial = db.exec(select(BillingDrugProduct).where(BillingDrugProduct.clinic_id == clinic.id,
                                                    BillingDrugProduct.code == "J3490")).one()
    key = f"product_{vial.id}"
    for ndc, message in [("123", "is not an NDC"), ("00000-0001-01", "is a placeholder"),
                         ("0000-0000-00", "is a placeholder"), ("12345-6789-01", "is a placeholder"),
                         ("1234567890", "is not an NDC"), ("١٢٣", "is not an NDC")]:
        bad = post(app, client, "/billing/fees", {"price_96365": "475.00", f"{key}_ndc": ndc})
        assert bad.status_code == 422 and message in bad.text, ndc
    bad = post(app, client, "/billing/fees", {"price_96365": "-1", f"{key}_mg": "NaN", f"{key}_unit": "LB"})
    assert bad.status_code == 422 and "more than zero" in bad.text
    assert "Milligrams per unit must be between" in bad.text and "choose the NDC unit (ML, UN" in bad.text
    fresh(db)
    assert db.get(BillingDrugProduct, vial.id).ndc == vial.ndc
    ok = post(app, client, "/billing/fees", {"price_96365": "475.00", f"{key}_ndc": "0143-9508-10",
                                              f"{key}_unit": "ML", f"{key}_mg": "10",
                                              "esketamine_billing": "g_codes", "office_visit_code": "99214"})
    assert ok.status_code == 302
    fresh(db)
    assert db.get(BillingDrugProduct, vial.id).ndc == "00143950810"  # a 4-4-2 NDC padded to 5-4-2
    tid, _ = complete_session(app, dose=35.0)
    fresh(db)
    line = db.exec(select(BillingCharge).where(BillingCharge.treatment_id == tid, BillingCharge.code == "96365")).one()
    assert line.amount_cents == 47_500
    drug = db.exec(select(BillingCharge).where(BillingCharge.treatment_id == tid, BillingCharge.code == "J3490")).one()
    assert (drug.ndc, drug.ndc_unit, drug.ndc_quantity) == ("00143950810", "ML", "3.5")  # 35 mg at 10 mg/mL


def test_batch_cli_writes_year_of_superbills(app, db, tmp_path):
    from plugins.billing.cli import superbills_command

    year = db.exec(select(BillingCharge.service_date)).first().year
    runner = app.test_cli_runner()
    result = runner.invoke(superbills_command, ["--clinic", "stillwater", "--year", str(year), "--out",
                                                str(tmp_path), "--workers", "2"])
    assert result.exit_code == 0, result.output
    files = sorted(tmp_path.glob("superbill-*.pdf"))
    assert len(files) >= 3 and f"Wrote {len(files)} superbills" in result.output
    fresh(db)
    issued = db.exec(select(BillingSuperbill).where(BillingSuperbill.scope == "year")).all()
    assert len(issued) == len(files)
    assert "Total charges (28)" in pdf_text(files[0].read_bytes())


def test_claim_rules_refuse_bad_lines_before_billing_and_at_issue(app, db):
    """Add-on without primary, G-code with J0013, deleted code, J3490 without NDC, pointer past the list:
    refused when the lines are invoiced; lines billed before these rules (a placeholder NDC) are
    refused again when a superbill would carry them."""
    from plugins.billing import charges, superbills
    from plugins.billing.money import next_number
    from core.models import Diagnosis, Provider

    patient = _portal_patient(db)
    with app.app_context():
        w = new_session(app.extensions["glia"].engine)
        clinic = w.get(Clinic, patient.clinic_id)
        provider = w.exec(select(Provider).where(Provider.clinic_id == clinic.id)).first()
        day = utcnow().date() + timedelta(days=3)

        def line(code, pointers="A", status="draft", **kw):
            c = BillingCharge(clinic_id=clinic.id, patient_id=patient.id, provider_id=provider.id, service_date=day,
                              code=code, descriptor=code, unit_price_cents=1000, amount_cents=1000,
                              pointers=pointers, status=status, created_at=utcnow(), **kw)
            w.add(c)
            return c

        drafts = [line(code, pointers) for code, pointers in [("96366", "A"), ("G2082", "A"), ("J0013", "A"),
                                                              ("99201", "A"), ("J3490", "A"), ("96372", "Z")]]
        w.flush()
        with pytest.raises(charges.LinesInvalid) as refused:
            charges.create_invoice(w, clinic.id, patient.id, [c.id for c in drafts], None)
        w.rollback()
        text_ = refused.value.message
        assert "add-on code 96366 needs its primary code (96365)" in text_
        assert "G2082 already includes the drug; it cannot be billed with J0013" in text_
        assert "99201 was deleted on 2021-01-01; use 99202 instead" in text_
        assert "J3490 needs the dose given" in text_
        assert "pointer Z is not a listed diagnosis" in text_

        # lines billed before the claim rules: a placeholder NDC and a category diagnosis
        w.add(Diagnosis(clinic_id=clinic.id, patient_id=patient.id, code="F33", description="category"))
        inv = BillingInvoice(clinic_id=clinic.id, patient_id=patient.id, number=next_number(w, clinic.id, "invoice"),
                             total_cents=2000, issued_at=utcnow())
        w.add(inv)
        w.flush()
        line("96365", status="billed", invoice_id=inv.id)
        line("J3490", status="billed", invoice_id=inv.id, ndc="00000000101", ndc_unit="ML", ndc_quantity="0.7",
             dose="35 mg")
        w.flush()
        from plugins.billing.payments import record_payment

        record_payment(w, clinic.id, inv.id, amount_cents=2000, method="cash", key="legacy")
        _data, errors = superbills.build_superbill(w, clinic, w.get(Patient, patient.id), day, day, "visit")
        w.rollback()
        w.close()
    text_ = " ".join(message for message, _where in errors)
    assert "J3490 needs the NDC of the product used, and NDC 00000-0001-01 is a placeholder" in text_
    assert "F33 is a category; choose a billable code under it" in text_
