"""Journeys through the clinic day in a real browser: check-in, treatment, alert review, portal."""
from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import expect
from sqlmodel import select

from core.db import new_session
from core.models import OutcomeScore, Patient, SessionStatus, TreatmentSession, utcnow
from tests.browser.conftest import screenshot


def _todays_session(db, mrn: str, status: SessionStatus) -> TreatmentSession:
    patient = db.exec(select(Patient).where(Patient.mrn == mrn)).one()
    return db.exec(select(TreatmentSession).where(TreatmentSession.patient_id == patient.id,
                                                  TreatmentSession.status == status)).first()


def test_front_desk_checks_a_patient_in(page, live_server, sign_in, db):
    t = _todays_session(db, "ST1000", SessionStatus.scheduled)
    sign_in(page, "frontdesk")
    expect(page.get_by_role("heading", name=re.compile("Today at Stillwater"))).to_be_visible()
    page.locator(f"a[href='/sessions/{t.id}']").click()
    page.get_by_label(re.compile("The escort is confirmed")).check()
    page.get_by_role("button", name="Check in").click()
    expect(page.locator(".flash")).to_contain_text("Checked in")
    expect(page.locator(".stepper [aria-current=step]")).to_have_text("Checked in")
    # front desk sees no clinical detail: no medication list on the chart
    page.get_by_role("link", name=re.compile("Sampleton|Testwell|Exampleby|Mockridge|Placeholm")).first.click()
    expect(page.locator("#medications")).to_have_count(0)


def test_clinician_runs_a_session_from_vitals_to_discharge(page, live_server, sign_in, app):
    sign_in(page, "clinician")
    screenshot(page, "dashboard")
    checked_in = page.get_by_role("region", name="Checked in").locator("a.session-link")
    urls = [checked_in.nth(i).get_attribute("href") for i in range(checked_in.count())]
    ready, saw_refusal = None, False
    for url in urls:  # the demo has both: sessions a plugin blocks, and sessions ready to start
        page.goto(live_server + url)
        if page.get_by_role("button", name="Record baseline vitals").count():  # else a re-check is offered
            page.fill("input[name=baseline_systolic]", "126")
            page.fill("input[name=baseline_diastolic]", "82")
            page.get_by_role("button", name="Record baseline vitals").click()
        if page.locator("#start .blockers").count():
            if not saw_refusal:
                screenshot(page, "session-blocked")
                page.get_by_role("button", name="Start session").click()
                expect(page.get_by_role("heading", name="This session cannot start yet")).to_be_visible()
                saw_refusal = True
            continue
        ready = url
        break
    assert ready, "no checked-in demo session is ready to start"
    page.get_by_role("button", name="Start session").click()
    expect(page.locator(".stepper [aria-current=step]")).to_have_text("Dosing")
    # a dose in the usual range: IV/IM ketamine by weight (0.5 mg/kg), sublingual in mg
    page.fill("input[name=dose_mg]", "200" if "Sublingual" in page.locator("h1").inner_text() else "35")
    page.fill("input[name=weight_kg]", "70")
    page.fill("input[name=post_systolic]", "142")
    page.fill("input[name=post_diastolic]", "88")
    page.fill("input[name=post_heart_rate]", "84")
    page.select_option("select[name=effect_dissociation]", "moderate")
    page.select_option("select[name=effect_nausea]", "mild")
    screenshot(page, "session-monitor")
    page.get_by_role("button", name="Save and move to monitoring").click()
    expect(page.locator(".stepper [aria-current=step]")).to_have_text("Monitoring")
    expect(page.locator(".discharge-clock")).to_contain_text("Discharge possible from")
    _dosed_long_ago(app, int(page.url.rstrip("/").rsplit("/", 1)[1]))  # recovery has its own journey
    page.reload()
    page.fill("input[name=discharge_systolic]", "128")
    page.fill("input[name=discharge_diastolic]", "80")
    page.get_by_label(re.compile("Released to the escort")).check()
    for resolved in page.locator("#discharge input[type=radio][value=yes]").all():
        resolved.check()
    page.get_by_role("button", name="Discharge").click()
    expect(page.locator(".flash")).to_contain_text("Discharged")
    expect(page.locator("#vitals-list tbody tr")).to_have_count(3)
    expect(page.locator("#vitals-list")).to_contain_text("Dissociation")
    screenshot(page, "session-discharged")


def _dosed_long_ago(app, treatment_id: int) -> None:
    with new_session(app.extensions["glia"].engine) as s:
        t = s.get(TreatmentSession, treatment_id)
        t.dosed_at = utcnow() - timedelta(hours=2)
        s.add(t)
        s.commit()


def test_clinician_reviews_an_item9_alert(page, live_server, sign_in, db):
    patient = db.exec(select(Patient).where(Patient.mrn == "ST1003")).one()
    sign_in(page, "clinician")
    alerts = page.locator(".alert-card li")
    before = alerts.count()
    assert before >= 1
    page.goto(f"{live_server}/patients/{patient.id}")
    expect(page.locator(".alert-card")).to_contain_text("item 9")
    screenshot(page, "chart")
    page.locator(".alert-card").get_by_role("button", name="Mark reviewed").first.click()
    expect(page.locator(".flash")).to_contain_text("reviewed")
    page.goto(f"{live_server}/")
    expect(page.locator(".alert-card li")).to_have_count(before - 1)
    with new_session(db.get_bind(), write=False) as fresh:  # db's snapshot predates the review
        assert fresh.exec(select(OutcomeScore).where(OutcomeScore.patient_id == patient.id, OutcomeScore.alert,
                                                     OutcomeScore.reviewed_at.is_(None))).first() is None


def test_patient_logs_into_the_portal(page, live_server, sign_in):
    page.set_viewport_size({"width": 390, "height": 800})
    sign_in(page, "patient")
    expect(page).to_have_url(re.compile("/portal/"))
    expect(page.get_by_role("heading", name=re.compile("Hello"))).to_be_visible()
    expect(page.locator(".mainnav")).to_have_count(0)
    screenshot(page, "portal")
