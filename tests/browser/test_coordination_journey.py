"""A clinician writes a progress letter to a patient's psychiatrist and downloads the signed PDF."""
from __future__ import annotations

import io
import re

from playwright.sync_api import expect
from pypdf import PdfReader
from sqlmodel import select

from core.models import CareTeamMember, Clinic, ClinicianKind, Instrument, Medication, OutcomeScore, Patient
from plugins.coordination.models import CoordinationDocument
from tests.browser.conftest import ARTIFACTS, screenshot


def test_clinician_writes_signs_and_downloads_a_progress_letter(page, live_server, sign_in, db):
    patient, benzo, psychiatrist = db.exec(
        select(Patient, Medication, CareTeamMember.clinician_id).join(Medication, Medication.patient_id == Patient.id).join(Clinic)
        .join(CareTeamMember, CareTeamMember.patient_id == Patient.id)
        .where(Clinic.slug == "stillwater", Medication.drug_class == "benzodiazepine", Medication.is_trial.is_(False),
               Medication.stop_date.is_(None), CareTeamMember.role == ClinicianKind.psychiatrist,
               Patient.id.not_in(select(CoordinationDocument.patient_id))).order_by(Patient.id)).first()
    phq = db.exec(select(OutcomeScore.total).where(OutcomeScore.patient_id == patient.id,
                                                   OutcomeScore.instrument == Instrument.phq9)
                  .order_by(OutcomeScore.taken_at)).all()

    sign_in(page, "clinician")
    page.goto(f"{live_server}/patients/{patient.id}")
    page.get_by_role("link", name="Write or manage letters").click()
    page.select_option("select[name=kind]", "progress")
    page.locator("select[name=recipient_id]").first.select_option(str(psychiatrist))
    page.get_by_role("button", name="Start letter").click()

    page.fill("textarea[name=crisis_plan]", "Safety plan reviewed; 988 and our after-hours line.")
    page.fill("textarea[name=requests]", "Please share your plan for the benzodiazepine before the next session.")
    page.get_by_role("button", name="Save and preview").click()
    expect(page.get_by_role("heading", name=re.compile("Preview: Progress update"))).to_be_visible()
    expect(page.locator(".letter-preview")).to_contain_text(f"{benzo.name} (flagged)")
    expect(page.locator(".letter-preview svg.trend-chart")).to_have_count(1)
    screenshot(page, "coordination-preview")
    page.get_by_role("button", name="Sign letter").click()
    expect(page.locator(".flash")).to_contain_text("Letter signed")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download PDF").click()
    path = ARTIFACTS / "coordination-progress-letter.pdf"
    ARTIFACTS.mkdir(exist_ok=True)
    download.value.save_as(path)
    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(path.read_bytes())).pages)
    assert patient.legal_name in text
    assert f"{benzo.name} (flagged)" in text and "lowering or holding the dose" in text
    trend = text[text.index("PHQ-9 item 9"):]
    for value in phq:
        found = re.search(rf"\b{value}\b", trend)
        assert found, value
        trend = trend[found.end():]
    assert "Electronically signed by Cleo Clinician, MD" in text

    page.select_option("select[name=method]", "fax")
    page.get_by_role("button", name="Mark as sent").click()
    expect(page.locator(".flash")).to_contain_text("Recorded as sent by fax")
    screenshot(page, "coordination-sent")

    # a maintenance letter without its plan cannot be signed; the draft is discarded instead
    page.goto(f"{live_server}/coordination/patients/{patient.id}")
    page.select_option("select[name=kind]", "maintenance")
    page.locator("select[name=recipient_id]").first.select_option(str(psychiatrist))
    page.get_by_role("button", name="Start letter").click()
    page.fill("textarea[name=plan]", "")
    page.get_by_role("button", name="Save and preview").click()
    expect(page.get_by_role("alert").first).to_contain_text("needs the plan")
    expect(page.get_by_role("button", name="Sign letter")).to_have_count(0)
    page.get_by_role("link", name="Back to the letter").click()
    page.get_by_role("button", name="Discard draft").click()
    expect(page.locator(".flash")).to_contain_text("Draft discarded")
    expect(page.get_by_role("link", name="Maintenance plan")).to_have_count(0)
