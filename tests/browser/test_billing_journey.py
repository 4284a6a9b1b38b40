"""From a discharged session to the patient's superbill, in a real browser.

Core lets only clinicians and admins chart a session (CHARTING_ROLES), so the clinician discharges
and the manager does the billing, as in a clinic.
"""
from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import expect
from sqlmodel import select

from core import workflow
from core.db import new_session
from core.models import Patient, SessionStatus, TreatmentSession, utcnow
from tests.browser.conftest import screenshot
from tests.test_billing_web import assert_superbill_fields, pdf_text


def _session_in_monitoring(app) -> int:
    """The portal patient's session of today, dosed and in monitoring (earlier steps have their own journey)."""
    s = new_session(app.extensions["glia"].engine)
    patient = s.exec(select(Patient).where(Patient.mrn == "ST1000")).one()
    t = s.exec(select(TreatmentSession).where(TreatmentSession.patient_id == patient.id,
                                              TreatmentSession.status != SessionStatus.discharged)).first()
    start = utcnow() - timedelta(minutes=90)
    t.status, t.checked_in_at, t.started_at, t.monitoring_at = SessionStatus.monitoring, start, start, start + timedelta(minutes=45)
    t.dose_mg, t.duration_minutes, t.escort_confirmed, t.version = 35.0, 45, True, t.version + 1
    t.dosed_at = start  # the infusion ended 45 minutes ago: past core's 30 minutes of recovery
    with workflow.importing(s):  # arranged as history, past the gate (the gate has its own tests)
        s.add(t)
    s.commit()
    s.close()
    return t.id


def _sign_out(page):
    page.get_by_role("button", name="Sign out").click()


def test_session_to_invoice_payment_superbill_and_portal_download(page, live_server, sign_in, app, db, tmp_path):
    tid = _session_in_monitoring(app)

    sign_in(page, "clinician")
    page.goto(f"{live_server}/sessions/{tid}")
    page.fill("input[name=discharge_systolic]", "124")
    page.fill("input[name=discharge_diastolic]", "80")
    page.get_by_label(re.compile("Released to the escort")).check()
    page.get_by_role("button", name="Discharge").click()
    expect(page.locator(".flash")).to_contain_text("Discharged")
    _sign_out(page)

    sign_in(page, "manager")
    page.get_by_role("link", name="Billing").first.click()
    page.locator(f"a[href='/billing/treatments/{tid}/charges']").click()
    expect(page.locator("table")).to_contain_text("96365")
    expect(page.locator("table")).to_contain_text("J3490")
    screenshot(page, "billing-review-charges")
    page.get_by_role("button", name="Approve and issue invoice").click()
    expect(page.locator(".flash")).to_contain_text("Invoice INV-")
    expect(page.locator(".balance")).to_have_text("$500.00")
    page.fill("input[name=amount]", "500.00")
    page.select_option("select[name=method]", "card")
    page.fill("input[name=reference]", "4242")
    page.get_by_role("button", name="Record payment").click()
    expect(page.locator(".flash")).to_contain_text("Payment of $500.00 recorded")
    expect(page.locator(".balance")).to_have_text("$0.00")
    screenshot(page, "billing-invoice-paid")

    page.locator("p.muted a").first.click()  # the patient's billing account
    page.get_by_role("button", name="Issue superbill").click()
    expect(page.locator(".flash")).to_contain_text("Superbill SB-")
    page.get_by_role("button", name="Send portal link").click()
    expect(page.locator(".flash")).to_contain_text("Portal link recorded")
    screenshot(page, "billing-superbill")
    _sign_out(page)

    sign_in(page, "patient")
    page.get_by_role("link", name="Billing and superbills").click()
    expect(page.get_by_role("heading", name="Superbills")).to_be_visible()
    screenshot(page, "billing-portal")
    with page.expect_download() as download:
        page.locator("a[href^='/billing/portal/superbills/']").first.click()
    assert re.fullmatch(r"superbill-SB-\d{6}\.pdf", download.value.suggested_filename)
    path = tmp_path / "superbill.pdf"
    download.value.save_as(path)
    patient = db.exec(select(Patient).where(Patient.mrn == "ST1000")).one()
    assert_superbill_fields(pdf_text(path.read_bytes()), db, patient.id)
