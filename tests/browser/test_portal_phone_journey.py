"""A patient on a phone (375 x 740): signs in, sees the upcoming sessions with how to prepare, asks to
move one, answers a PHQ-9 (first missing one question, then with item 9 above 0), and is shown 988
crisis resources at once; a clinician then sees the item-9 alert and the request on Today."""
from __future__ import annotations

import re

from playwright.sync_api import expect
from sqlmodel import select

from core.db import new_session
from core.models import Clinic, Patient
from tests.browser.conftest import screenshot

PHONE = {"width": 375, "height": 740}
DESK = {"width": 1180, "height": 820}
ANSWERS = ["Several days", "Several days", "More than half the days", "Not at all", "Several days", "Not at all",
           "Several days", "Not at all", "Several days"]  # 1+1+2+0+1+0+1+0+1 = 7, item 9 = 1


def _portal_patient(app) -> Patient:
    with new_session(app.extensions["glia"].engine, write=False) as s:
        clinic = s.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
        return s.exec(select(Patient).where(Patient.clinic_id == clinic.id, Patient.user_id.is_not(None))).one()


def _fits_the_phone(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "the page scrolls sideways"


def test_a_patient_answers_a_phq9_on_a_phone_and_a_clinician_sees_the_alert(page, live_server, sign_in, app):
    patient = _portal_patient(app)
    page.set_viewport_size(PHONE)
    sign_in(page, "patient")
    expect(page.get_by_role("heading", name="Your upcoming sessions")).to_be_visible()
    visits = page.locator("li.visit")
    assert visits.count() >= 2  # the demo books a few ahead: every one is listed, not just the next
    expect(visits.first).to_contain_text("Eating and drinking")
    expect(visits.first).to_contain_text("until the next day")
    expect(visits.nth(1).get_by_text("How to prepare")).to_be_visible()  # later ones fold their instructions
    expect(page.get_by_role("link", name="Answer the GAD-7")).to_have_count(0)  # the demo patient answered it
    _fits_the_phone(page)
    screenshot(page, "portal-phone-home")

    # the patient's escort cannot come to the second visit: they ask to move it
    visits.nth(1).get_by_role("link", name=re.compile("Ask to move or cancel")).click()
    page.get_by_label("Move it to another day or time").check()
    page.get_by_role("button", name="Send my request").click()
    expect(page.locator(".field-error")).to_contain_text("Choose a reason.")  # nothing sent yet
    page.select_option("select[name=reason]", "escort")
    page.fill("textarea[name=note]", "Any afternoon that week works.")
    _fits_the_phone(page)
    screenshot(page, "portal-phone-change")
    page.get_by_role("button", name="Send my request").click()
    expect(page.locator(".flash")).to_contain_text("Your request was sent")
    expect(page.locator("li.visit").nth(1)).to_contain_text("You asked to move this session")
    page.goto(f"{live_server}/portal/")

    page.get_by_role("link", name="Answer the PHQ-9").click()
    expect(page.get_by_role("heading", name=re.compile("PHQ-9"))).to_be_visible()
    for n, answer in enumerate(ANSWERS, 1):
        if n != 5:  # question 5 forgotten
            page.locator(f"#q-item{n}").get_by_label(answer).check()
    page.get_by_role("button", name="Send my answers").click()
    expect(page.locator("#q-item5")).to_contain_text("Please answer question 5.")
    expect(page.locator("#q-item9").get_by_label("Several days")).to_be_checked()  # nothing answered is lost
    _fits_the_phone(page)
    screenshot(page, "portal-phone-phq9-missing")

    page.locator("#q-item5").get_by_label(ANSWERS[4]).check()
    page.get_by_role("button", name="Send my answers").click()
    crisis = page.locator("section.crisis")
    expect(crisis.get_by_role("heading", name=re.compile("help is here now"))).to_be_visible()
    expect(crisis.get_by_role("link", name="Call 988")).to_have_attribute("href", "tel:988")
    expect(crisis.get_by_role("link", name="Text 988")).to_have_attribute("href", "sms:988")
    expect(crisis).to_contain_text("988 Suicide & Crisis Lifeline")
    expect(crisis.get_by_role("link", name="call 911")).to_be_visible()
    assert crisis.bounding_box()["y"] < PHONE["height"]  # on the first screen, without scrolling
    _fits_the_phone(page)
    screenshot(page, "portal-phone-crisis")

    page.get_by_role("link", name="Back to your portal").click()
    expect(page.get_by_role("link", name="Answer the PHQ-9")).to_have_count(0)  # done: no longer due
    page.context.clear_cookies()

    page.set_viewport_size(DESK)
    sign_in(page, "clinician")
    alerts = page.locator(".alert-card")
    expect(alerts).to_contain_text(patient.display_name)
    expect(alerts).to_contain_text("PHQ-9 7 (Mild), item 9 = 1")
    requests = page.locator(".requests-card")
    expect(requests).to_contain_text(patient.display_name)
    expect(requests).to_contain_text("Any afternoon that week works.")
    expect(requests.get_by_role("link", name="Move session")).to_be_visible()
    screenshot(page, "portal-alert-on-today")
    requests.get_by_role("button", name=re.compile("Mark handled")).click()
    expect(page.locator(".flash")).to_contain_text("Request marked handled.")
    expect(page.locator(".requests-card")).to_have_count(0)
