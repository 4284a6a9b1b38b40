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
    page.get_by_label("Your password").fill("wrong-password-here")
    page.get_by_role("button", name="Unlock with password").click()
    expect(page.get_by_text("That password is not right.")).to_be_visible()
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Unlock with password").click()
    expect(page.locator("nav.mainnav")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/patients/$"))
    context.close()


def test_a_staff_member_sets_a_tablet_pin_and_unlocks_the_tablet_with_it(page, live_server, sign_in, db):
    """On the test's own page, so axe checks the PIN page and the lock screen with its message."""
    (_t, patient), = _checked_in_unsigned(db, 1)
    sign_in(page, "clinician")
    page.goto(f"{live_server}/account/mfa")
    page.get_by_role("link", name="Set a tablet PIN").click()
    page.get_by_label("Your password").fill(PASSWORD)
    page.locator("#f-pin").fill("123456")
    page.locator("#f-confirm").fill("123456")
    page.get_by_role("button", name="Save PIN").click()
    expect(page.get_by_text("Too easy to guess")).to_be_visible()  # beside the PIN field
    page.get_by_label("Your password").fill(PASSWORD)
    page.locator("#f-pin").fill("480517")
    page.locator("#f-confirm").fill("480517")
    page.get_by_role("button", name="Save PIN").click()
    expect(page.get_by_text("Tablet PIN saved")).to_be_visible()

    page.goto(f"{live_server}/consent/patients/{patient.id}/sign/treatment_day")
    page.goto(f"{live_server}/patients/")
    expect(page.get_by_role("heading", name="Please hand this device back to the staff")).to_be_visible()
    page.get_by_label("Your tablet PIN").fill("111112")
    page.get_by_role("button", name="Unlock with PIN").click()
    expect(page.get_by_text("That PIN is not right.")).to_be_visible()
    expect(page.get_by_label("Your tablet PIN")).to_have_attribute("aria-describedby", "e-pin")
    _shot(page, "tablet-unlock-pin")
    page.get_by_label("Your tablet PIN").fill("480517")
    page.get_by_role("button", name="Unlock with PIN").click()
    expect(page.locator("nav.mainnav")).to_be_visible()
