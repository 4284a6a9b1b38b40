"""A clinician signs an outcome report from the chart, and the manager opens the clinic's outcomes page
from Today, in a real browser (axe checks every page visited)."""
from __future__ import annotations

from playwright.sync_api import expect
from sqlmodel import select

from core.db import new_session
from core.models import Clinic, Instrument, Patient
from core.outcomes import clinic as clinic_figures
from core.outcomes import measures
from tests.browser.conftest import screenshot


def _responder(app):
    """A demo patient who completed induction and responded, with the clinic's PHQ-9 figures."""
    with new_session(app.extensions["glia"].engine, write=False) as s:
        clinic = s.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
        figures = clinic_figures.figures(s, clinic.id)
        for patient_id in sorted(figures.completers):
            if measures.course(s, clinic.id, patient_id).measures[Instrument.phq9].status == "response":
                return s.get(Patient, patient_id), figures.rates[Instrument.phq9]
    raise AssertionError("the demo has no responder who completed induction")


def test_clinician_signs_an_outcome_report_and_manager_reads_clinic_outcomes(page, live_server, sign_in, app):
    patient, phq = _responder(app)
    sign_in(page, "clinician")
    page.goto(f"{live_server}/patients/{patient.id}")
    page.get_by_role("link", name="Outcome report (PDF)").click()
    expect(page.locator(".report-preview")).to_contain_text("Response")
    page.select_option("select[name=purpose]", "appeal")
    page.fill("textarea[name=statement]", "Induction complete with response; maintenance requested.")
    page.get_by_role("button", name="Sign and save the PDF").click()
    expect(page.locator(".flash")).to_contain_text("Outcome report signed.")
    expect(page.locator("#signed-h + .plain-list li")).to_have_count(1)
    screenshot(page, "outcome-report-signed")

    page.context.clear_cookies()
    sign_in(page, "manager")
    page.get_by_role("link", name="Outcomes").click()
    expect(page.get_by_role("heading", name="Clinic outcomes")).to_be_visible()
    expect(page.locator("main")).to_contain_text(f"{phq.responders} of {phq.evaluable} patients")
    screenshot(page, "clinic-outcomes")
