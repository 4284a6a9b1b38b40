"""Consent in a real browser: the patient signs on the tablet, a clinician acknowledges a relative
contraindication and the session starts; an absolute contraindication keeps another one blocked."""
from __future__ import annotations

import re

from playwright.sync_api import expect
from sqlmodel import select

from core.models import Clinic, Modality, Patient, SessionStatus, TreatmentSession
from plugins.consent.models import SignedConsent
from tests.browser.conftest import screenshot


def _checked_in_unsigned(db, count: int) -> list[tuple[TreatmentSession, Patient]]:
    """Checked-in IV ketamine sessions (baseline vitals taken) of patients with nothing signed yet."""
    clinic = db.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
    signed = set(db.exec(select(SignedConsent.patient_id)).all())
    found = []
    for t in db.exec(select(TreatmentSession).where(
            TreatmentSession.clinic_id == clinic.id, TreatmentSession.status == SessionStatus.checked_in,
            TreatmentSession.modality == Modality.iv_ketamine).order_by(TreatmentSession.id)).all():
        if t.patient_id not in signed:
            found.append((t, db.get(Patient, t.patient_id)))
    assert len(found) >= count, "the demo needs more checked-in patients without consents"
    return found[:count]


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
    expect(page.get_by_text(re.compile("Consent: Informed consent: ketamine .* not signed")).first).to_be_visible()

    # the clinician hands over the tablet: the patient reads, ticks, types and draws, three times
    page.get_by_role("link", name="Resolve").first.click()
    shot_taken = False
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
