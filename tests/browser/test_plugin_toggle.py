"""Journey: an admin disables a plugin for one clinic; it disappears there and only there."""
import re

from playwright.sync_api import expect

from tests.browser.conftest import screenshot


def test_admin_disables_plugin_for_harbor_only(page, live_server, sign_in):
    sign_in(page, "admin")
    page.goto(f"{live_server}/admin/plugins")
    row = page.locator("tr[data-plugin=coordination]")
    expect(row).to_be_visible()
    row.get_by_role("button", name=re.compile("Disable coordination for Harbor")).click()
    expect(page.locator(".flash")).to_contain_text("coordination disabled for Harbor")
    screenshot(page, "admin-plugins")
    expect(page.locator("tr[data-plugin=coordination]").get_by_role(
        "button", name=re.compile("Enable coordination for Harbor"))).to_be_visible()
