"""A Spravato session in a real browser: dosing starts the 2-hour clock, the page counts down to the
time discharge becomes possible, and an early discharge is refused with that time."""
from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from core.models import Modality
from tests.browser.conftest import screenshot
from tests.test_dosing import arrange, row


def test_a_spravato_session_shows_its_discharge_countdown_and_refuses_an_early_discharge(page, live_server, sign_in, app):
    tid = arrange(app, modality=Modality.esketamine_nasal, clinic="harbor")  # started; day 1 of induction
    console_errors, scripts = [], []
    page.on("console", lambda msg: console_errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.on("response", lambda r: scripts.append(r.status) if r.url.endswith("/countdown.js") else None)
    sign_in(page, "harbor.clinician")
    page.goto(f"{live_server}/sessions/{tid}")
    expect(page.locator("#monitor")).to_contain_text("day 1 of induction): 56 mg")
    page.fill("input[name=dose_mg]", "56")
    page.fill("input[name=lot_number]", "LOT-A1")
    page.fill("input[name=post_systolic]", "138")
    page.fill("input[name=post_diastolic]", "86")
    page.select_option("select[name=effect_dissociation]", "mild")
    page.get_by_role("button", name="Save and move to monitoring").click()

    expect(page.locator(".stepper [aria-current=step]")).to_have_text("Monitoring")
    t = row(app, tid)
    possible = (t.dosed_at + timedelta(minutes=120)).astimezone(ZoneInfo("America/New_York"))
    at = possible.strftime("%I:%M %p").lstrip("0")
    clock = page.locator(".discharge-clock")
    expect(clock).to_contain_text(f"Discharge possible from {at}")
    expect(clock.locator(".countdown")).to_have_text(re.compile(r"^in (1 h 5\d min|2 h)$"))
    expect(page.locator("#dosing")).to_contain_text("56 mg (2 devices)")
    expect(page.locator("#dosing")).to_contain_text("LOT-A1")

    page.fill("input[name=discharge_systolic]", "126")
    page.fill("input[name=discharge_diastolic]", "80")
    page.fill("input[name=ready_minutes]", "0")
    page.locator("#discharge input[type=radio][value=yes]").check()
    page.get_by_label(re.compile("Released to the escort")).check()
    page.get_by_role("button", name="Discharge").click()
    refusal = page.locator("#discharge .notice")
    expect(refusal).to_contain_text(f"Discharge possible from {at}")
    expect(refusal).to_contain_text("no override")
    expect(page.locator(".stepper [aria-current=step]")).to_have_text("Monitoring")
    screenshot(page, "discharge-countdown")
    assert row(app, tid).discharged_at is None
    assert scripts and set(scripts) <= {200, 304} and not console_errors  # the countdown script loads under the CSP
