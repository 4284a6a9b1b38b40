"""The patient accepts the portal invitation: the desk sends it from the chart, it waits in the outbox
(no SMTP here), the patient follows its link, sets a password (a weak one is refused) and lands in the
portal."""
from __future__ import annotations

import re

from playwright.sync_api import expect
from sqlmodel import select

from core.db import new_session
from core.models import Clinic, Patient
from tests.browser.conftest import screenshot


def _patient_without_portal(app) -> Patient:
    with new_session(app.extensions["glia"].engine, write=False) as s:
        clinic = s.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
        return s.exec(select(Patient).where(Patient.clinic_id == clinic.id, Patient.user_id.is_(None),
                                            Patient.email != "").order_by(Patient.id)).first()


def test_the_patient_accepts_the_invitation_from_the_outbox_and_lands_in_the_portal(page, live_server, sign_in, app):
    patient = _patient_without_portal(app)
    sign_in(page, "frontdesk")
    page.goto(f"{live_server}/patients/{patient.id}")
    page.get_by_role("button", name="Send portal invitation").click()
    expect(page.locator(".flash")).to_contain_text("Portal invitation kept in the outbox.")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Outbox").click()
    expect(page.locator("table")).to_contain_text(patient.email)
    page.get_by_role("link", name="Your patient portal at").first.click()
    expect(page.locator(".mail-body")).to_contain_text("set your password")
    screenshot(page, "invitation-outbox-message")
    link = page.locator(".mail-body a[href*='/portal/invite/']").get_attribute("href")
    assert link.startswith(live_server)

    page.get_by_role("button", name="Sign out").click()
    page.set_viewport_size({"width": 390, "height": 844})  # the patient, on a phone
    p = page
    p.goto(link)
    expect(p.get_by_role("heading", name="Set your portal password")).to_be_visible()
    expect(p.locator("main")).to_contain_text(patient.email)
    p.fill("input[name=password]", "password1234")
    p.fill("input[name=confirm]", "password1234")
    p.get_by_role("button", name="Set password and open my portal").click()
    # the refusal is told beside the field, and read out with it
    expect(p.locator("#f-password")).to_have_accessible_description(re.compile("too easy to guess"))
    p.fill("input[name=password]", "copper lantern orbits quietly")
    p.fill("input[name=confirm]", "copper lantern orbits quietly")
    p.get_by_role("button", name="Set password and open my portal").click()
    expect(p.locator(".flash")).to_contain_text("Your password is set. Welcome to your portal.")
    expect(p.get_by_role("heading", level=1)).to_contain_text(patient.preferred_name or patient.legal_first_name)
    assert p.url == f"{live_server}/portal/"
    screenshot(p, "invitation-accepted-portal")
    p.goto(link)
    expect(p.get_by_role("heading", level=1)).to_have_text("This invitation has been used or has expired")
