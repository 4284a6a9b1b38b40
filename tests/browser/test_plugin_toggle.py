"""Journey: an admin disables a plugin for one clinic; it disappears there and only there.

ratings answers treatment_blockers, so the admin confirms on a page that asks for a reason.

The app runs the example `ratings` plugin (a nav item and routes of its own) next to the
built-in ones, so the journey does not depend on how far the built-ins have come.
"""
import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.example_plugins import BUILTIN, RATINGS, migrate

HARBOR = "Harbor Esketamine Center (demo)"
STILLWATER = "Stillwater Ketamine Clinic (demo)"


@pytest.fixture
def app(make_app, db_url):
    migrate(db_url, BUILTIN + [RATINGS])
    return make_app(plugins=BUILTIN + [RATINGS])


def _switch_to(page, clinic_name):
    page.select_option("select#clinic_id", label=clinic_name)
    page.get_by_role("button", name="Switch").click()
    expect(page.locator("select#clinic_id option:checked")).to_have_text(clinic_name)


def test_admin_disables_plugin_for_harbor_only(page, live_server, sign_in):
    sign_in(page, "admin")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Ratings")).to_be_visible()

    nav.get_by_role("link", name="Settings").click()  # Plugins sits in the Settings menu
    page.get_by_role("navigation", name="Settings").get_by_role("link", name="Plugins").click()
    row = page.locator("tr[data-plugin=ratings]")
    expect(row).to_contain_text("Visit ratings: an example third-party plugin")
    expect(row).to_contain_text("nav_items")
    row.get_by_role("button", name=f"Disable ratings for {HARBOR}").click()
    # ratings can hold a session back (treatment_blockers): switching it off takes a reason
    expect(page.get_by_role("heading", name=f"Sessions at {HARBOR} will start without the ratings plugin's checks")).to_be_visible()
    page.get_by_label("Reason for switching it off").fill("Ratings paused while the survey is reworded")
    page.get_by_label(f"I understand that sessions at {HARBOR}").check()
    screenshot(page, "plugin-disable-gate-confirm")
    page.get_by_role("button", name=f"Switch ratings off for {HARBOR}").click()
    expect(page.locator(".flash")).to_contain_text(f"ratings disabled for {HARBOR}")
    expect(page.locator("tr[data-plugin=ratings]")).to_contain_text("Ratings paused while the survey is reworded")
    row = page.locator("tr[data-plugin=ratings]")
    expect(row.get_by_role("button", name=f"Enable ratings for {HARBOR}")).to_be_visible()
    expect(row.get_by_role("button", name=f"Disable ratings for {STILLWATER}")).to_be_visible()
    screenshot(page, "admin-plugins")

    _switch_to(page, HARBOR)
    expect(nav.get_by_role("link", name="Patients")).to_be_visible()
    expect(nav.get_by_role("link", name="Ratings")).to_have_count(0)
    expect(page.get_by_text("visit ratings on file")).to_have_count(0)
    response = page.goto(f"{live_server}/ratings/")
    assert response.status == 404
    screenshot(page, "plugin-disabled-harbor-404")

    page.goto(f"{live_server}/")
    _switch_to(page, STILLWATER)
    expect(nav.get_by_role("link", name="Ratings")).to_be_visible()
    nav.get_by_role("link", name="Ratings").click()
    expect(page.get_by_role("heading", name="Visit ratings")).to_be_visible()
    assert re.search(r"/ratings/$", page.url)
