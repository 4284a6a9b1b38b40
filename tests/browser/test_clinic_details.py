"""The clinic's working details in a real browser: the top menu stays on one line at 1180 px and up, a
cancellation asks first even without JavaScript, and a tablet handed to a patient shows the lock
screen instead of staff pages until staff unlock it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core.models import SessionStatus, TreatmentSession
from tests.browser.conftest import screenshot
from tests.browser.test_consent_journey import _checked_in_unsigned
from tests.support import PASSWORD

SHOTS = Path("/tmp/shots")


def _shot(page, name: str) -> None:
    """Into test-artifacts/ like every journey, and a copy under /tmp/shots for review."""
    path = screenshot(page, name)
    SHOTS.mkdir(exist_ok=True)
    (SHOTS / path.name).write_bytes(path.read_bytes())


@pytest.mark.parametrize("width", [1180, 1280])
@pytest.mark.parametrize("who", ["admin", "manager"])
def test_the_top_menu_stays_on_one_line_at_1180_and_1280_px(browser, live_server, sign_in, who, width):
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    sign_in(page, who)
    expect(page.locator("nav.mainnav a").first).to_be_visible()
    links = page.locator("nav.mainnav a")
    assert links.count() >= 6  # all plugins on: their items are in the menu too
    if width == 1180:  # before the checks, so a wrapped menu is seen too
        _shot(page, "menu-1180" if who == "manager" else "menu-1180-admin")
    tops = {round(links.nth(i).bounding_box()["y"]) for i in range(links.count())}
    assert len(tops) == 1, f"the menu wraps onto {len(tops)} lines"
    bar = page.locator("header.topbar").bounding_box()
    link = links.first.bounding_box()
    assert bar["height"] < 2 * link["height"] + 24, "the top bar wraps (menu, clinic switch and account)"
    if who == "admin" and width == 1280:
        _shot(page, "topbar-admin-1280")
    context.close()


def test_cancelling_a_session_asks_first_without_javascript(browser, live_server, sign_in, db):
    (t, patient), = _checked_in_unsigned(db, 1)
    context = browser.new_context(viewport={"width": 1280, "height": 800}, java_script_enabled=False)
    page = context.new_page()
    sign_in(page, "frontdesk")
    page.goto(f"{live_server}/sessions/{t.id}")
    page.get_by_role("button", name="Cancel session").click()
    expect(page.get_by_role("heading", name="Cancel this session?")).to_be_visible()
    expect(page.get_by_text(patient.display_name).first).to_be_visible()
    _shot(page, "confirm-cancel-session")
    page.get_by_role("link", name="Go back").click()
    expect(page.get_by_role("button", name="Cancel session")).to_be_visible()
    db.rollback()
    assert db.get(TreatmentSession, t.id).status == SessionStatus.checked_in

    page.get_by_role("button", name="Cancel session").click()
    page.get_by_role("button", name="Yes, cancel the session").click()
    expect(page.locator(".flash")).to_contain_text("Session cancelled.")
    db.rollback()
    assert db.get(TreatmentSession, t.id).status == SessionStatus.cancelled
    context.close()


def test_a_tablet_handed_to_a_patient_shows_the_lock_screen_until_unlocked(browser, live_server, sign_in, db):
    (_t, patient), = _checked_in_unsigned(db, 1)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    sign_in(page, "clinician")
    page.goto(f"{live_server}/consent/patients/{patient.id}/sign/treatment_day")
    expect(page.get_by_role("button", name="Sign this consent")).to_be_visible()
    expect(page.locator("nav.mainnav")).to_have_count(0)
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)

    page.goto(f"{live_server}/patients/")  # the patient tries the staff pages
    expect(page.get_by_role("heading", name="Please hand this device back to the staff")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("Patients|Today"))).to_have_count(0)
    _shot(page, "tablet-lock-screen")
    page.get_by_label(re.compile("enter your password to unlock")).fill("wrong-password-here")
    page.get_by_role("button", name="Unlock").click()
    expect(page.get_by_text("That password is not right.")).to_be_visible()
    page.get_by_label(re.compile("enter your password to unlock")).fill(PASSWORD)
    page.get_by_role("button", name="Unlock").click()
    expect(page.locator("nav.mainnav")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/patients/$"))
    context.close()
