"""A changed screening answer in a real browser: the front desk re-screens a patient and answers "no"
to an aneurysm a clinician recorded; the clinician sees the change flagged on the session page,
confirms it with a written reason, and only then starts the session."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.support import login, post
from tests.test_consent_safety import ANEURYSM, ANEURYSM_LABEL, ready_session, screening_answers


def test_front_desk_rescreen_is_flagged_and_a_clinician_confirms_it_before_the_start(page, live_server, sign_in,
                                                                                      app, db):
    t = ready_session(app, db)
    clinician = app.test_client()  # what happened last week: the clinician recorded the aneurysm
    login(app, clinician, "clinician")
    assert post(app, clinician, f"/consent/patients/{t.patient_id}/screening",
                screening_answers({ANEURYSM}, answered_by="staff")).status_code == 302

    # today the front desk takes the answers again, and the patient says "no"
    sign_in(page, "frontdesk")
    page.goto(f"{live_server}/consent/patients/{t.patient_id}/screening")
    for radio in page.locator("input[type=radio][value=no][name^=item_]").all():
        radio.check()
    page.get_by_label("Staff, from the patient's answers").check()
    page.get_by_role("button", name="Save answers").click()
    expect(page.get_by_text(re.compile("a clinician must review the change before it takes effect"))).to_be_visible()
    expect(page.get_by_text(ANEURYSM_LABEL)).to_have_count(0)  # the front desk never sees the answers
    page.context.clear_cookies()

    # the clinician opens the session: the change is flagged and the start is held back
    sign_in(page, "clinician")
    page.goto(f"{live_server}/sessions/{t.id}")
    blocker = page.locator(".blockers li", has_text="then no by front desk")
    expect(blocker).to_contain_text(ANEURYSM_LABEL)
    expect(blocker).to_contain_text("a clinician must review the change")
    history = page.locator(f"#item-{ANEURYSM}")
    expect(history).to_contain_text("Changed to no: a clinician must review")
    expect(history).to_contain_text("Staff, from the patient's answers; recorded by Fran Frontdesk (demo), front desk")
    expect(history).to_contain_text("not yet reviewed: the yes stays in force")
    screenshot(page, "screening-change-flagged")
    page.get_by_role("button", name="Start session").click()
    expect(page.get_by_role("heading", name="This session cannot start yet")).to_be_visible()
    expect(page.get_by_text(re.compile("then no by front desk")).first).to_be_visible()

    # the clinician reviews the change, writes why the yes no longer applies, and signs
    page.goto(f"{live_server}/sessions/{t.id}")
    blocker.get_by_role("link", name="Resolve").click()
    expect(page.get_by_role("heading", name="Review a changed screening answer")).to_be_visible()
    page.get_by_role("button", name="Confirm the change and sign").click()  # nothing written yet
    expect(page.get_by_text(re.compile("at least 10 characters"))).to_be_visible()
    page.fill("textarea[name=reason]", "Vascular surgeon's letter (2024): no aneurysm; the earlier yes was a "
                                       "varicose vein. Confirmed with the patient today.")
    page.get_by_label(re.compile("I reviewed this change")).check()
    screenshot(page, "screening-change-review")
    page.get_by_role("button", name="Confirm the change and sign").click()

    # back on the session page: the check passes, the history says who cleared it, and the session starts
    expect(page.get_by_text("Change confirmed and signed")).to_be_visible()
    expect(page.get_by_text("All pre-treatment checks pass.")).to_be_visible()
    expect(page.locator(f"#item-{ANEURYSM}")).to_contain_text("Cleared by Dr. Cleo Clinician")
    expect(page.locator(f"#item-{ANEURYSM}")).to_contain_text("Vascular surgeon's letter")
    screenshot(page, "screening-change-confirmed")
    page.get_by_role("button", name="Start session").click()
    expect(page.get_by_text(re.compile("Session started"))).to_be_visible()
