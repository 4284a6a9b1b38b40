"""Consent in a real browser: the patient signs on the tablet and the clinician attests each consent
right after, a clinician acknowledges a relative contraindication and the session starts; an
absolute contraindication keeps another one blocked."""
from __future__ import annotations

import re

from playwright.sync_api import expect
from sqlmodel import select

from core.models import Clinic, Modality, Patient, SessionStatus, TreatmentSession
from tests.browser.conftest import screenshot
from tests.support import PASSWORD


def _checked_in_unsigned(db, count: int) -> list[tuple[TreatmentSession, Patient]]:
    """New IV ketamine patients checked in today (escort confirmed, baseline vitals taken) who have
    signed nothing yet: the demo's treated patients all signed before their first session."""
    from datetime import date

    from core.db import new_session
    from core.models import Provider, VitalPhase, VitalSign, utcnow

    clinic = db.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
    ids = []
    with new_session(db.get_bind()) as s:
        provider = s.exec(select(Provider).where(Provider.clinic_id == clinic.id)).first()
        for n in range(count):
            patient = Patient(clinic_id=clinic.id, mrn=f"NEW{n}{utcnow():%H%M%S%f}"[:20], legal_first_name=f"Nova{n}",
                              legal_last_name="Intakeson", dob=date(1990, 1, 2 + n), escort_name="Sam Intakeson",
                              created_at=utcnow())
            s.add(patient)
            s.flush()
            t = TreatmentSession(clinic_id=clinic.id, patient_id=patient.id, provider_id=provider.id,
                                 modality=Modality.iv_ketamine, status=SessionStatus.checked_in, scheduled_at=utcnow(),
                                 checked_in_at=utcnow(), escort_name="Sam Intakeson", escort_confirmed=True, weight_kg=70.0)
            s.add(t)
            s.flush()
            s.add(VitalSign(clinic_id=clinic.id, treatment_id=t.id, phase=VitalPhase.baseline, systolic=122,
                            diastolic=78, heart_rate=70, spo2=98, taken_at=utcnow()))
            ids.append((t.id, patient.id))
        s.commit()
    db.rollback()
    return [(db.get(TreatmentSession, tid), db.get(Patient, pid)) for tid, pid in ids]


def _draw(page) -> None:
    canvas = page.locator("[data-signature-pad] canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 20, box["y"] + 120)
    page.mouse.down()
    for step in range(1, 12):
        page.mouse.move(box["x"] + 20 + step * 25, box["y"] + 120 - (step % 3) * 30)
    page.mouse.up()


def _screen(page, base: str, patient: Patient, yes: str) -> None:
    page.goto(f"{base}/consent/patients/{patient.id}/screening")
    for radio in page.locator("input[type=radio][value=no][name^=item_]").all():
        radio.check()
    page.locator(f"input[name=item_{yes}][value=yes]").check()
    page.get_by_role("button", name="Save answers").click()
    expect(page.get_by_text("Screening saved")).to_be_visible()


def test_tablet_signing_acknowledgement_and_start(page, live_server, sign_in, db):
    (t, patient), (t2, other) = _checked_in_unsigned(db, 2)
    sign_in(page, "clinician")
    page.goto(f"{live_server}/sessions/{t.id}")
    expect(page.get_by_text(re.compile("Consent: Informed consent: IV ketamine .* not signed")).first).to_be_visible()

    # the clinician hands over the tablet: the patient reads, ticks, types and draws, three times
    page.get_by_role("link", name="Resolve").first.click()
    shot_taken = attested_once = False
    for _ in range(3):
        expect(page.locator("[data-signature-pad]")).to_be_visible()  # JavaScript enhanced the form
        for box in page.locator("input[name^=ack_]").all():
            box.check()
        page.fill("input[name=signer_name]", patient.legal_name)
        _draw(page)
        expect(page.locator("input[name=signature_png]")).to_have_value(re.compile("^data:image/png;base64,"))
        if not shot_taken:
            screenshot(page, "consent-tablet-sign")
            shot_taken = True
        page.get_by_role("button", name="Sign this consent").click()
        expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
        # the tablet comes back to the clinician, who unlocks it and attests that they explained it
        expect(page.locator("nav.mainnav")).to_have_count(0)
        page.get_by_label("Your password").fill(PASSWORD)
        page.get_by_role("button", name="Unlock").click()
        expect(page.get_by_text("Awaiting clinician attestation")).to_be_visible()
        expect(page.get_by_role("link", name="Download the signed PDF")).to_have_count(0)
        page.get_by_label(re.compile("I attest to the statement above")).check()
        if not attested_once:
            screenshot(page, "consent-attest")
            attested_once = True
        page.get_by_role("button", name="Sign the attestation").click()
        expect(page.get_by_text("Attested and signed")).to_be_visible()
        expect(page.get_by_role("link", name="Download the signed PDF")).to_be_visible()
        todo = page.locator("a[href*='/sign/']")
        if todo.count():
            todo.first.click()
    screenshot(page, "consent-tablet-signed")

    # the patient reports a relative contraindication; the session stays blocked until acknowledged
    _screen(page, live_server, patient, "substance_use")
    page.goto(f"{live_server}/sessions/{t.id}")
    reason = page.get_by_text(re.compile("Relative contraindication needs a clinician's acknowledgement")).first
    expect(reason).to_be_visible()
    page.locator("li", has_text="Relative contraindication").get_by_role("link", name="Resolve").first.click()
    page.fill("textarea[name=rationale]", "In sustained remission for 3 years, engaged in treatment; discussed risks.")
    page.get_by_label(re.compile("I have weighed this risk")).check()
    screenshot(page, "consent-acknowledgement")
    page.get_by_role("button", name="Sign acknowledgement").click()
    expect(page.get_by_text("Acknowledgement signed.")).to_be_visible()

    page.goto(f"{live_server}/sessions/{t.id}")
    expect(page.get_by_text("Relative contraindication")).to_have_count(0)
    page.get_by_role("button", name="Start session").click()
    expect(page.get_by_text(re.compile("Session started"))).to_be_visible()

    # an absolute contraindication cannot be acknowledged: that session stays blocked
    _screen(page, live_server, other, "intracerebral_hemorrhage")
    page.goto(f"{live_server}/sessions/{t2.id}")
    expect(page.get_by_text(re.compile("Absolute contraindication: History of intracerebral hemorrhage")).first).to_be_visible()
    page.get_by_role("button", name="Start session").click()
    expect(page.get_by_role("heading", name="This session cannot start yet")).to_be_visible()
    expect(page.get_by_text(re.compile("Absolute contraindication")).first).to_be_visible()
    screenshot(page, "consent-absolute-blocked")
