"""Billing documents read back the way a payer, a patient and an auditor meet them (issue 10).

Every PDF is read back with pypdf; the facts asserted are the ones DOMAIN.md "Billing plugin"
says a superbill, a Good Faith Estimate and a receipt must state.
"""
from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import text
from sqlmodel import func, select

from core.db import new_session
from core.vocab import SEXES
from core.models import (Clinic, Diagnosis, ImmutableRecordError, Instrument, OutcomeScore, Patient, Provider,
                         TreatmentSession, utcnow)
from plugins.billing.estimates import add_business_days, gfe_due_date
from plugins.billing.models import (BillingCharge, BillingDrugProduct, BillingEstimate, BillingInvoice,
                                    BillingPayment, BillingSuperbill, BillingVoid)
from plugins.billing.money import local_date
from tests.support import login, post
from tests.test_billing_web import _invoice_from_draft, _pay_form, complete_session, fresh, pdf_text


def flat(data: bytes) -> str:
    return " ".join(pdf_text(data).split())


def new_id(resp) -> int:
    assert resp.status_code == 302, resp.text[:2000]
    return int(resp.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def arrange(app, fn):
    """Write arrangement rows in a session of their own (committed)."""
    with app.app_context():
        w = new_session(app.extensions["glia"].engine)
        result = fn(w)
        w.commit()
        w.close()
        return result


def pay(app, client, iid, amount=None, method="card", reference=""):
    key, seen = _pay_form(client, iid)
    html = client.get(f"/billing/invoices/{iid}").text
    amount = amount or re.search(r'name="amount" type="text" value="([^"]+)"', html).group(1)
    resp = post(app, client, f"/billing/invoices/{iid}/payments", {"amount": amount, "method": method,
                                                                   "reference": reference, "idempotency_key": key,
                                                                   "seen_balance": seen})
    assert resp.status_code == 302, resp.text[:2000]


def paid_superbill(app, client, db, mrn="ST1000"):
    """A discharged session, invoiced, paid in cash, and its visit superbill (as the manager)."""
    tid, pid = complete_session(app, mrn)
    iid = _invoice_from_draft(app, client, tid)
    pay(app, client, iid, method="cash")
    fresh(db)
    day = db.exec(select(BillingCharge.service_date).where(BillingCharge.treatment_id == tid)).first()
    sid = new_id(post(app, client, f"/billing/patients/{pid}/superbills", {"date": day.isoformat(), "scope": "visit"}))
    fresh(db)
    return pid, iid, day, sid


# -- 3. superbills a payer accepts -------------------------------------------------------------------

def test_superbill_states_ndc_pointers_modifier_25_license_sex_and_each_payment(app, client, db):
    me = db.exec(select(Patient).where(Patient.mrn == "ST1000")).one()  # diagnoses A F33.2, B F43.10

    def chart(w):  # an anxiety diagnosis, and a PHQ-9 and a GAD-7 scored on the chart today
        w.add(Diagnosis(clinic_id=me.clinic_id, patient_id=me.id, code="F41.1", description="Generalized anxiety"))
        for instrument, items in [(Instrument.phq9, [1] * 9), (Instrument.gad7, [2] * 7)]:
            w.add(OutcomeScore(clinic_id=me.clinic_id, patient_id=me.id, instrument=instrument, items=items,
                               total=sum(items), band="moderate", taken_at=utcnow() - timedelta(minutes=30)))
    arrange(app, chart)
    vial = db.exec(select(BillingDrugProduct).where(BillingDrugProduct.clinic_id == me.clinic_id,
                                                    BillingDrugProduct.code == "J3490")).one()
    tid, pid = complete_session(app, "ST1000", minutes=50, dose=35.0)
    login(app, client, "manager")
    fresh(db)
    invoices = db.exec(select(func.count()).select_from(BillingInvoice).where(BillingInvoice.patient_id == pid)).one()
    lines = {c.descriptor: c for c in db.exec(select(BillingCharge).where(BillingCharge.treatment_id == tid)).all()}
    assert {c.code: c.pointers for c in lines.values() if c.code != "96127"} == {"96365": "A", "J3490": "A"}
    assert [lines[d].pointers for d in sorted(lines) if "GAD-7" in d] == ["C"]  # the anxiety code
    assert [lines[d].pointers for d in sorted(lines) if "PHQ-9" in d] == ["A"]  # the depression code

    # a clinic that never entered its ketamine NDC cannot bill the drug line
    assert post(app, client, "/billing/fees", {f"product_{vial.id}_ndc": ""}).status_code == 302
    refused = post(app, client, f"/billing/treatments/{tid}/charges", {"action": "invoice"})
    assert refused.status_code == 422 and "J3490 needs the NDC of the product used, and no NDC is set" in refused.text
    assert post(app, client, "/billing/fees", {f"product_{vial.id}_ndc": "99999-9999-10"}).status_code == 302

    # a same-day visit with an infusion needs modifier 25, entered only when separately identifiable
    assert post(app, client, f"/billing/treatments/{tid}/charges",
                {"action": "add", "add_code": "99214", "add_units": "1"}).status_code == 302
    for bad in [{"add_code": "99999"}, {"add_code": "99214", "add_units": "0"}, {"add_code": "99214", "add_units": "x"}]:
        assert post(app, client, f"/billing/treatments/{tid}/charges", {"action": "add", **bad}).status_code == 422
    refused = post(app, client, f"/billing/treatments/{tid}/charges", {"action": "invoice"})
    assert refused.status_code == 422 and "is billed on the same day as 96365: add modifier 25" in refused.text
    fresh(db)
    assert db.exec(select(func.count()).select_from(BillingInvoice).where(BillingInvoice.patient_id == pid)).one() \
        == invoices  # refused twice, nothing billed
    visit = db.exec(select(BillingCharge).where(BillingCharge.treatment_id == tid, BillingCharge.code == "99214")).one()
    assert visit.status == "draft"
    iid = new_id(post(app, client, f"/billing/treatments/{tid}/charges",
                      {"action": "invoice", f"modifiers_{visit.id}": "25"}))
    pay(app, client, iid, "200.00", "card", "4242")
    pay(app, client, iid, method="check", reference="1042")

    day = visit.service_date
    sid = new_id(post(app, client, f"/billing/patients/{pid}/superbills", {"date": day.isoformat(), "scope": "visit"}))
    text_ = flat(client.get(f"/billing/superbills/{sid}.pdf").data)
    us = day.strftime("%m/%d/%Y")
    assert f"Dates of service: {us}" in text_
    assert "N499999999910 ML0.7" in text_  # N4, 11 digits 5-4-2 without hyphens, unit, quantity (35 mg / 50 mg/mL)
    assert "96365 IV infusion, first hour A $450.00" in text_
    assert "(GAD-7) C $15.00" in text_ and "(PHQ-9) A $15.00" in text_
    assert re.search(r"99214 25 Established patient visit \(moderate complexity\) A \$200\.00", text_)
    assert f"{me.dob.strftime('%m/%d/%Y')} · {SEXES[me.sex]}" in text_
    provider = db.get(Provider, visit.provider_id)
    assert f"License {provider.license_number} ({provider.license_state})" in text_
    fresh(db)
    receipts = db.exec(select(BillingPayment).where(BillingPayment.invoice_id == iid).order_by(BillingPayment.id)).all()
    invoice = db.get(BillingInvoice, iid)
    assert f"{us} Card (4242) {receipts[0].receipt_label} INV-{invoice.number:06d} $200.00" in text_
    assert f"{us} Check (1042) {receipts[1].receipt_label} INV-{invoice.number:06d} $530.00" in text_
    assert "Amount paid (29) $730.00" in text_


def test_esketamine_lines_carry_the_kit_ndc_and_a_period_superbill_shows_the_span_of_service(app, client, db):
    first_next_month = (date.today().replace(day=1) + timedelta(days=32)).replace(day=1)
    tids = []
    for dose, day in [(56.0, first_next_month + timedelta(days=1)), (84.0, first_next_month + timedelta(days=8))]:
        tid, pid = complete_session(app, "HA1000", dose=dose)

        def move(w, tid=tid, day=day):  # drafts may still change: date them inside next month
            for c in w.exec(select(BillingCharge).where(BillingCharge.treatment_id == tid)).all():
                c.service_date = day
                w.add(c)
        arrange(app, move)
        tids.append(tid)
    login(app, client, "harbor.manager")
    for tid in tids:
        pay(app, client, _invoice_from_draft(app, client, tid))
    sid = new_id(post(app, client, f"/billing/patients/{pid}/superbills",
                      {"date": first_next_month.isoformat(), "scope": "month"}))
    text_ = flat(client.get(f"/billing/superbills/{sid}.pdf").data)
    span = (f"Dates of service: {(first_next_month + timedelta(days=1)).strftime('%m/%d/%Y')} – "
            f"{(first_next_month + timedelta(days=8)).strftime('%m/%d/%Y')}")
    assert span in text_ and first_next_month.strftime("%m/%d/%Y") not in text_  # not the requested month
    assert "N450458002802 UN1" in text_ and "N450458002803 UN1" in text_  # the 56 mg and the 84 mg kit
    assert re.search(r"J0013 Esketamine nasal, per 1 mg · 56 mg NDC \(24A shaded\): N450458002802 UN1 A \$672\.00 56",
                     text_)


# -- 4. a void is a void --------------------------------------------------------------------------------

def test_voided_superbill_is_marked_for_staff_and_replaced_in_the_portal(app, client, db):
    login(app, client, "manager")
    pid, _iid, day, old = paid_superbill(app, client, db)
    stored = db.get(BillingSuperbill, old).pdf
    again = post(app, client, f"/billing/patients/{pid}/superbills", {"date": day.isoformat(), "scope": "visit"})
    assert again.status_code == 409 and "already covers this period" in again.text
    for reason in ["", "   ", "\u200b"]:
        assert post(app, client, f"/billing/superbills/{old}/void", {"confirm": "yes", "reason": reason}).status_code == 422
    new = new_id(post(app, client, f"/billing/superbills/{old}/void", {"confirm": "yes", "reason": "Wrong pointer", "reissue": "1"}))
    fresh(db)
    old_sb, new_sb = db.get(BillingSuperbill, old), db.get(BillingSuperbill, new)
    assert (new_sb.replaces_id, new_sb.revision) == (old, 1) and old_sb.pdf == stored
    assert post(app, client, f"/billing/superbills/{old}/void", {"confirm": "yes", "reason": "twice"}).status_code == 409

    staff = client.get(f"/billing/superbills/{old}.pdf")
    assert staff.status_code == 200 and staff.data != stored
    assert staff.headers["Content-Disposition"] == f'attachment; filename="superbill-{old_sb.label}-VOID.pdf"'
    marked = flat(staff.data)
    assert "VOID: this superbill was voided on" in marked and f"It is replaced by {new_sb.label}" in marked
    assert f"Superbill {old_sb.label}" in marked and "(Wrong pointer)" in marked
    assert "VOID" not in flat(client.get(f"/billing/superbills/{new}.pdf").data)

    patient = app.test_client()
    login(app, patient, "patient")
    home = patient.get("/billing/portal/").text
    assert f"Superbill {old_sb.label} <span class=\"pill off\">Replaced: do not use" in home
    assert f"/billing/portal/superbills/{old}.pdf" not in home and f"/billing/portal/superbills/{new}.pdf" in home
    gone = patient.get(f"/billing/portal/superbills/{old}.pdf")
    assert gone.status_code == 410 and b"%PDF" not in gone.data
    assert "was voided" in gone.text and f'href="/billing/portal/superbills/{new}.pdf"' in gone.text
    assert "Wrong pointer" not in gone.text  # the staff's reason stays with the staff
    got = patient.get(f"/billing/portal/superbills/{new}.pdf")
    assert got.status_code == 200 and "VOID" not in flat(got.data) and new_sb.label in flat(got.data)

    # voided without a replacement: the portal says so; issuing the period again replaces it
    assert post(app, client, f"/billing/superbills/{new}/void", {"confirm": "yes", "reason": "Patient asked to hold it"}).status_code == 302
    assert "no replacement issued yet" in client.get(f"/billing/superbills/{new}").text
    held = patient.get(f"/billing/portal/superbills/{new}.pdf")
    assert held.status_code == 410 and "has not issued a corrected one yet" in held.text
    third = new_id(post(app, client, f"/billing/patients/{pid}/superbills", {"date": day.isoformat(), "scope": "visit"}))
    fresh(db)
    assert (db.get(BillingSuperbill, third).replaces_id, db.get(BillingSuperbill, third).revision) == (new, 2)
    assert f'href="/billing/portal/superbills/{third}.pdf"' in patient.get(f"/billing/portal/superbills/{old}.pdf").text


def test_voided_estimate_and_receipt_carry_the_mark_and_name_their_replacement(app, client, db):
    me = db.exec(select(Patient).where(Patient.mrn == "ST1000")).one()
    provider_id = db.exec(select(TreatmentSession.provider_id).where(TreatmentSession.patient_id == me.id)).first()
    login(app, client, "manager")
    first = add_business_days(local_date(db.get(Clinic, me.clinic_id), None), 12).isoformat()
    form = {"provider_id": provider_id, "modality": "iv_ketamine", "sessions": "1", "dose_mg": "35",
            "evaluation_code": "", "first_date": first}
    assert post(app, client, f"/billing/patients/{me.id}/estimates", form).status_code == 302
    fresh(db)
    old = db.exec(select(BillingEstimate).where(BillingEstimate.patient_id == me.id)
                  .order_by(BillingEstimate.id.desc())).first()
    assert post(app, client, f"/billing/patients/{me.id}/estimates",
                {**form, "sessions": "2", "replaces_id": str(old.id)}).status_code == 302
    fresh(db)
    new = db.exec(select(BillingEstimate).order_by(BillingEstimate.id.desc())).first()
    assert new.replaces_id == old.id and db.exec(select(BillingVoid).where(
        BillingVoid.document_type == "estimate", BillingVoid.document_id == old.id)).one()
    marked = flat(client.get(f"/billing/estimates/{old.id}.pdf").data)
    assert "VOID: this estimate was voided on" in marked and "It is replaced by the estimate issued" in marked
    assert "It replaces the estimate issued" in flat(new.pdf)
    patient = app.test_client()
    login(app, patient, "patient")
    gone = patient.get(f"/billing/portal/estimates/{old.id}.pdf")
    assert gone.status_code == 410 and f'href="/billing/portal/estimates/{new.id}.pdf"' in gone.text
    assert patient.get(f"/billing/portal/estimates/{new.id}.pdf").data == new.pdf

    # a payment entered as card that was a check: its receipt is voided and a corrected one replaces it
    tid, _ = complete_session(app)
    iid = _invoice_from_draft(app, client, tid)
    pay(app, client, iid, method="card")
    fresh(db)
    wrong = db.exec(select(BillingPayment).where(BillingPayment.invoice_id == iid)).one()
    correction = {"amount": "500.00", "method": "check", "reference": "1042", "reason": "It was a check",
                  "idempotency_key": "fix-1"}
    for bad in [{"reason": ""}, {"amount": "-3"}, {"method": "bitcoin"}, {"amount": "600.00"}]:
        resp = post(app, client, f"/billing/payments/{wrong.id}/correct", {**correction, **bad,
                                                                            "idempotency_key": f"bad-{len(bad)}"})
        assert resp.status_code in (409, 422), bad
    assert db.exec(select(func.count()).select_from(BillingVoid).where(BillingVoid.document_type == "payment")).one() == 0
    for _ in range(2):  # a double submit corrects once
        assert post(app, client, f"/billing/payments/{wrong.id}/correct", correction).status_code == 302
    fresh(db)
    right = db.exec(select(BillingPayment).where(BillingPayment.replaces_id == wrong.id)).one()
    assert "$0.00" in client.get(f"/billing/invoices/{iid}").text.split("Balance due")[1][:200]
    old_receipt = flat(client.get(f"/billing/payments/{wrong.id}/receipt.pdf").data)
    assert "VOID: this receipt was voided on" in old_receipt and f"replaced by receipt {right.receipt_label}" in old_receipt
    assert f"Corrects Receipt {wrong.receipt_label} (void)" in flat(client.get(f"/billing/payments/{right.id}/receipt.pdf").data)
    portal_copy = patient.get(f"/billing/portal/receipts/{wrong.id}.pdf")
    assert portal_copy.status_code == 200 and "VOID: this receipt was voided" in flat(portal_copy.data)
    assert f"replaced by receipt {right.receipt_label}" in flat(portal_copy.data)
    assert "It was a check" in old_receipt and "It was a check" not in flat(portal_copy.data)
    assert post(app, client, f"/billing/payments/{wrong.id}/refund", {"confirm": "yes", "amount": "1.00", "idempotency_key": "r1"}
                ).status_code == 409  # a voided entry cannot be refunded


def test_issued_invoices_and_billed_lines_never_change_and_are_corrected_by_a_void(app, client, db):
    engine = app.extensions["glia"].engine
    billed = db.exec(select(BillingCharge).where(BillingCharge.status == "billed")).first()
    w = new_session(engine)
    for change in [lambda r: setattr(r, "amount_cents", 1), lambda r: setattr(r, "pointers", "B"), w.delete]:
        change(w.get(BillingCharge, billed.id))
        with pytest.raises(ImmutableRecordError):
            w.flush()
        w.rollback()
    invoice = w.get(BillingInvoice, billed.invoice_id)
    invoice.total_cents = 1
    with pytest.raises(ImmutableRecordError):
        w.flush()
    w.rollback()
    for sql in ["UPDATE billing_charge SET amount_cents = 1 WHERE id = :i", "DELETE FROM billing_charge WHERE id = :i"]:
        with pytest.raises(Exception, match="append-only"):
            w.execute(text(sql), {"i": billed.id})
        w.rollback()
    for sql in ["UPDATE billing_invoice SET total_cents = 1 WHERE id = :i", "DELETE FROM billing_invoice WHERE id = :i"]:
        with pytest.raises(Exception, match="append-only"):
            w.execute(text(sql), {"i": billed.invoice_id})
        w.rollback()
    draft = w.exec(select(BillingCharge).where(BillingCharge.status == "draft")).first()
    w.execute(text("UPDATE billing_charge SET units = 2 WHERE id = :i"), {"i": draft.id})  # drafts stay editable
    w.delete(w.get(BillingCharge, draft.id))
    w.flush()
    w.rollback()
    w.close()

    login(app, client, "manager")
    paid = post(app, client, f"/billing/invoices/{billed.invoice_id}/void", {"confirm": "yes", "reason": "wrong code"})
    assert paid.status_code == 409 and "has payments: refund or correct them before voiding it" in paid.text
    tid, pid = complete_session(app)
    iid = _invoice_from_draft(app, client, tid)
    assert post(app, client, f"/billing/invoices/{iid}/void", {"confirm": "yes", "reason": ""}).status_code == 422
    resp = post(app, client, f"/billing/invoices/{iid}/void", {"confirm": "yes", "reason": "Pointer should be B"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/billing/treatments/{tid}/charges")
    fresh(db)
    lines = db.exec(select(BillingCharge).where(BillingCharge.treatment_id == tid)).all()
    assert sorted(c.status for c in lines) == ["billed"] * 2 + ["draft"] * 2  # the void's lines stay as they were
    assert {(c.code, c.amount_cents) for c in lines if c.status == "draft"} == {
        (c.code, c.amount_cents) for c in lines if c.status == "billed"}
    assert "Void since" in client.get(f"/billing/invoices/{iid}").text
    account = client.get(f"/billing/patients/{pid}").text
    assert "Pointer should be B" not in account
    again = _invoice_from_draft(app, client, tid)
    assert again != iid and post(app, client, f"/billing/invoices/{iid}/void", {"confirm": "yes", "reason": "x"}).status_code == 409


# -- 6. Good Faith Estimates to the letter of 45 CFR 149.610 ---------------------------------------------

@pytest.mark.parametrize("ahead, requested, due_in", [
    (5, True, 1),    # scheduled 3-9 business days ahead and requested: the earlier (1 day) wins
    (5, False, 1),
    (12, False, 3),
    (12, True, 3),
    (1, True, 3),    # too soon for the scheduled rule: the request's 3 days apply
    (1, False, 1),
])
def test_estimate_deadline_is_the_earliest_that_applies(ahead, requested, due_in):
    today = date(2026, 3, 2)  # a Monday
    due, why = gfe_due_date(today, add_business_days(today, ahead), requested)
    assert due == add_business_days(today, due_in) and why


def test_esketamine_estimate_follows_the_label_and_states_every_disclaimer(app, client, db):
    me = db.exec(select(Patient).where(Patient.mrn == "ST1000")).one()
    clinic = db.get(Clinic, me.clinic_id)
    provider_id = db.exec(select(TreatmentSession.provider_id).where(TreatmentSession.patient_id == me.id)).first()
    login(app, client, "manager")
    today = local_date(clinic, None)
    first = add_business_days(today, 5)
    form = {"provider_id": provider_id, "modality": "esketamine_nasal", "sessions": "", "dose_mg": "84",
            "evaluation_code": "90792", "first_date": first.isoformat(), "requested": "1"}
    before = db.exec(select(func.count()).select_from(BillingEstimate)).one()
    for bad, message in [({"dose_mg": "70"}, "56 or 84 mg, as the label allows"),
                         ({"dose_mg": ""}, "Planned dose (mg) is required"),
                         ({"dose_mg": "NaN"}, "Planned dose (mg) must be between"),
                         ({"dose_mg": "fifty-six"}, "Planned dose (mg): enter a number"),
                         ({"sessions": "6"}, "leave Sessions empty or enter 8"),
                         ({"modality": "ketamine-ish"}, "Choose a treatment"),
                         ({"provider_id": "999999"}, "Choose a provider"),
                         ({"first_date": (today - timedelta(days=1)).isoformat()}, "the date has passed"),
                         ({"first_date": "\u0662\u0660\u0662\u0666-13-01"}, "First session")]:
        resp = post(app, client, f"/billing/patients/{me.id}/estimates", {**form, **bad})
        assert resp.status_code == 422 and message in resp.text, bad
    fresh(db)
    assert db.exec(select(func.count()).select_from(BillingEstimate)).one() == before

    assert post(app, client, f"/billing/patients/{me.id}/estimates", form).status_code == 302
    fresh(db)
    est = db.exec(select(BillingEstimate).order_by(BillingEstimate.id.desc())).first()
    assert est.due_date == add_business_days(today, 1)  # scheduled 5 business days ahead, also requested
    text_ = flat(client.get(f"/billing/estimates/{est.id}.pdf").data)
    for needle in [
        "Planned sessions 8", "twice a week for weeks 1-4 (8 sessions); day 1 at 56 mg, then 84 mg as planned",
        "J0013 Esketamine nasal, per 1 mg (56 mg) F33.2 Session 1 of 8, at 56 mg",
        "J0013 Esketamine nasal, per 1 mg (84 mg) F33.2 Sessions 2-8 of 8, at 84 mg",
        "99213 Established patient visit (low complexity) F33.2 Each of 8 treatment sessions",
        f"Due to you by {est.due_date.strftime('%m/%d/%Y')}", "within 1 business day of scheduling",
        f"Period of care {first.strftime('%m/%d/%Y')} – {(first + timedelta(days=27)).strftime('%m/%d/%Y')}",
        "This estimate is not a contract",
        "may recommend other items or services as part of your care that are not listed in this estimate",
        "would be estimated separately",
        "have the right to start the patient-provider dispute resolution process",
        "at least $400 more than this Good Faith Estimate", "within 120 calendar days",
        "will not adversely affect the quality of the care you receive",
        "www.cms.gov/nosurprises", "Keep a copy of this Good Faith Estimate",
        "Integration psychotherapy with your own therapist", "Ask your therapist for a Good Faith Estimate",
        me.legal_last_name, me.dob.strftime("%m/%d/%Y"), clinic.ein, clinic.npi,
    ]:
        assert needle in text_, needle

    assert post(app, client, f"/billing/patients/{me.id}/estimates", {**form, "dose_mg": "56", "sessions": "8"}
                ).status_code == 302
    fresh(db)
    text_ = flat(db.exec(select(BillingEstimate).order_by(BillingEstimate.id.desc())).first().pdf)
    assert "J0013 Esketamine nasal, per 1 mg (56 mg) F33.2 Each of 8 treatment sessions $672.00 $5,376.00" in text_
    assert "84 mg" not in text_


# -- 7. receipts -------------------------------------------------------------------------------------------

def test_receipt_lists_what_it_paid_and_its_number_reads_the_same_everywhere(app, client, db):
    login(app, client, "manager")
    tid, pid = complete_session(app)  # the portal patient
    iid = _invoice_from_draft(app, client, tid)
    pay(app, client, iid, "200.00", "card", "4242")
    fresh(db)
    payment = db.exec(select(BillingPayment).where(BillingPayment.invoice_id == iid)).one()
    me = db.get(Patient, pid)
    label = payment.receipt_label
    assert re.fullmatch(r"R-\d{6}", label)
    lines = db.exec(select(BillingCharge).where(BillingCharge.invoice_id == iid)).all()
    assert label in client.get(f"/billing/invoices/{payment.invoice_id}").text
    assert label in client.get(f"/billing/patients/{me.id}").text
    staff = client.get(f"/billing/payments/{payment.id}/receipt.pdf")
    patient = app.test_client()
    login(app, patient, "patient")
    assert f"Receipt {label}" in patient.get("/billing/portal/").text
    portal = patient.get(f"/billing/portal/receipts/{payment.id}.pdf")
    for resp in (staff, portal):
        assert resp.headers["Content-Disposition"] == f'attachment; filename="receipt-{label}.pdf"'
        text_ = flat(resp.data)
        assert f"No. {label}" in text_ and f"Receipt {label} ·" in text_  # heading and page footer
        for c in lines:
            assert f"{c.service_date.strftime('%m/%d/%Y')} {c.code} {c.descriptor}" in text_, c.code
        assert "Dates of service " + lines[0].service_date.strftime("%m/%d/%Y") in text_
        assert "Amount $200.00" in text_ and "Method Card (4242)" in text_ and me.legal_last_name in text_
        assert "ITEMS THIS PAYMENT IS APPLIED TO" in text_ and "Balance after this payment $300.00" in text_
    assert len(PdfReader(io.BytesIO(staff.data)).pages) == 1
    pay(app, client, iid, method="cash")  # paid later in full: the first receipt still reads as it did
    assert "Balance after this payment $300.00" in flat(client.get(f"/billing/payments/{payment.id}/receipt.pdf").data)


# -- 5. issuing is idempotent ------------------------------------------------------------------------------

def test_a_refund_needs_its_idempotency_key_like_a_payment(app, client, db):
    payment = db.exec(select(BillingPayment).where(BillingPayment.kind == "payment",
                                                   BillingPayment.package_id.is_(None))).first()
    clinic = db.get(Clinic, payment.clinic_id)
    login(app, client, "manager" if clinic.slug == "stillwater" else "harbor.manager")

    def refunds():
        fresh(db)
        return db.exec(select(func.count()).select_from(BillingPayment).where(BillingPayment.refund_of_id == payment.id)).one()

    for key in ["", " " * 3, "k" * 65]:
        resp = post(app, client, f"/billing/payments/{payment.id}/refund", {"confirm": "yes", "amount": "1.00", "idempotency_key": key})
        assert resp.status_code == 400 and "missing its submission key" in resp.text
    assert refunds() == 0
    for _ in range(2):
        assert post(app, client, f"/billing/payments/{payment.id}/refund",
                    {"confirm": "yes", "amount": "1.00", "idempotency_key": "refund-once"}).status_code == 302
    assert refunds() == 1


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:  # a thread that just ended
            pass
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state


def _year_superbills(engine, clinic_id):
    with new_session(engine, write=False) as s:
        return s.exec(select(BillingSuperbill).where(BillingSuperbill.clinic_id == clinic_id,
                                                     BillingSuperbill.scope == "year")).all()


def test_year_batch_killed_with_sigkill_and_rerun_leaves_one_superbill_per_patient(app, db, db_url, tmp_path):
    from plugins.billing.cli import superbills_command
    from plugins.billing.superbills import patient_ids_with_paid_services

    engine = app.extensions["glia"].engine
    clinic = db.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
    year = db.exec(select(BillingCharge.service_date).where(BillingCharge.clinic_id == clinic.id)
                   .order_by(BillingCharge.service_date.desc())).first().year
    patients = patient_ids_with_paid_services(db, clinic.id, year)
    assert len(patients) >= 3
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from core.cli import main; main()", "billing", "superbills", "--clinic",
           "stillwater", "--year", str(year), "--out", str(out), "--workers", "2"]
    repo = str(Path(__file__).resolve().parents[1])  # this checkout's code, whatever else is installed
    env = {**os.environ, "GLIA_DATABASE_URL": db_url,
           "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    run = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while not _year_superbills(engine, clinic.id):
            assert run.poll() is None, run.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the batch issued nothing in two minutes"
            workers |= set(_children(run.pid))
            time.sleep(0.05)
        workers |= set(_children(run.pid))
        os.kill(run.pid, signal.SIGKILL)  # mid-run: some patients issued, the rest not
        run.wait()
        assert workers
        deadline = time.monotonic() + 10
        while any(_alive(w) for w in workers):
            assert time.monotonic() < deadline, "workers outlived their killed parent"
            time.sleep(0.1)
    finally:  # never leave a process behind, whatever failed
        for pid in [run.pid, *workers]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert len(_year_superbills(engine, clinic.id)) < len(patients)

    for _ in range(2):  # the rerun finishes what is missing; a second rerun changes nothing
        result = app.test_cli_runner().invoke(superbills_command, ["--clinic", "stillwater", "--year", str(year),
                                                                   "--out", str(out), "--workers", "2"])
        assert result.exit_code == 0, result.output
        assert f"Wrote {len(patients)} superbills" in result.output
    assert "(0 issued now" in result.output
    issued = _year_superbills(engine, clinic.id)
    assert sorted(sb.patient_id for sb in issued) == sorted(patients)  # exactly one per patient and period
    files = sorted(out.glob("*"))
    assert [f.name for f in files] == sorted(f"superbill-{sb.label}.pdf" for sb in issued)  # no torn or temp files
    assert {f.read_bytes() for f in files} == {sb.pdf for sb in issued}
