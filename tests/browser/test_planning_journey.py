"""The front desk plans an induction series for a new patient in a real browser, then sees a second
series refused where it would take the same chair, with the session in the way named."""
from __future__ import annotations

from playwright.sync_api import expect
from sqlmodel import select

from core.db import new_session
from core.models import Clinic, Patient
from tests.browser.conftest import screenshot
from tests.test_planning import quiet_monday


def _two_new_patients(app) -> list[Patient]:
    with new_session(app.extensions["glia"].engine, write=False) as s:
        clinic = s.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
        return s.exec(select(Patient).where(Patient.clinic_id == clinic.id).order_by(Patient.id.desc())).all()[:2]


def _propose(page, live_server, patient, monday, at):
    page.goto(f"{live_server}/patients/{patient.id}")
    page.get_by_role("link", name="Plan a course or maintenance").click()
    page.select_option("select[name=modality]", "iv_ketamine")
    page.select_option("select[name=pattern]", "three_weekly")
    page.fill("input[name=first_day]", monday.isoformat())
    page.fill("input[name=at]", at)
    page.select_option("select[name=provider_id]", index=1)
    page.select_option("select[name=chair_id]", label="Aspen room")
    page.get_by_role("button", name="Propose dates").click()


def test_the_desk_books_a_series_and_sees_a_clash_refused(page, live_server, sign_in, app):
    first, second = _two_new_patients(app)
    monday = quiet_monday()
    sign_in(page, "frontdesk")
    _propose(page, live_server, first, monday, "10:00")
    expect(page.locator(".proposal-table tbody tr")).to_have_count(6)
    expect(page.get_by_role("status")).to_contain_text("Every session is free")
    page.get_by_role("button", name="Book 6 sessions").click()
    expect(page.locator(".flash")).to_contain_text("6 sessions booked.")
    screenshot(page, "plan-booked")

    _propose(page, live_server, second, monday, "10:30")
    expect(page.locator(".proposal-table tr.clash")).to_have_count(6)
    expect(page.locator(".proposal-table")).to_contain_text(f"Aspen room is taken: {monday:%a %b %d} 10:00-11:30, "
                                                           f"{first.display_name}")
    page.get_by_role("button", name="Book 6 sessions").click()
    expect(page.get_by_role("alert")).to_contain_text("Nothing was booked")
    screenshot(page, "plan-conflict-refused")

    page.goto(f"{live_server}/schedule?day={monday.isoformat()}")
    expect(page.locator(".day-grid td.booked")).to_contain_text(first.display_name)
    screenshot(page, "schedule-day")
