"""Dose safeguards: labelled esketamine doses, IV/IM ketamine by weight, written overrides, hard
ceilings, and the clinic's own limits on Settings > Safety limits."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlmodel import func, select

from core import workflow
from core.db import new_session
from core.dosing import DoseLimit, dose_text
from core.models import (AuditEvent, Clinic, Modality, Patient, Provider, SessionStatus, TreatmentSession, User,
                         VitalSign, utcnow)
from tests.support import login, post

S = SessionStatus
POST_DOSE = {"post_systolic": "132", "post_diastolic": "84"}


def midday_zone() -> str:
    """A fixed-offset zone where it is about noon now, so "earlier today" never crosses midnight."""
    hours = 12 - datetime.now(timezone.utc).hour
    return "Etc/GMT" if hours == 0 else f"Etc/GMT{'-' if hours > 0 else '+'}{abs(hours)}"


def arrange(app, *, modality: Modality, status: S = S.in_progress, weight: float | None = None, history: int = 0,
            clinic: str = "stillwater", **fields) -> int:
    """A new patient of ``clinic`` whose session today is at ``status`` (written as history, past the
    gate, which has its own tests), after ``history`` earlier discharged sessions of the modality."""
    now = utcnow()
    with new_session(app.extensions["glia"].engine) as s:
        c = s.exec(select(Clinic).where(Clinic.slug == clinic)).one()
        provider = s.exec(select(Provider).where(Provider.clinic_id == c.id).order_by(Provider.id)).first()
        patient = Patient(clinic_id=c.id, mrn=f"T{uuid.uuid4().hex[:8]}", legal_first_name="Dosing",
                          legal_last_name="Testcase", dob=date(1980, 5, 5), created_at=now)
        s.add(patient)
        s.flush()
        with workflow.importing(s):
            for k in range(history):
                day = now - timedelta(days=4 * (history - k))
                s.add(TreatmentSession(clinic_id=c.id, patient_id=patient.id, provider_id=provider.id, modality=modality,
                                       status=S.discharged, scheduled_at=day, started_at=day, dosed_at=day,
                                       monitoring_at=day, discharged_at=day + timedelta(hours=3), dose_mg=56.0,
                                       escort_confirmed=True))
            start = now - timedelta(minutes=20)
            t = TreatmentSession(clinic_id=c.id, patient_id=patient.id, provider_id=provider.id, modality=modality,
                                 status=status, scheduled_at=start, checked_in_at=start, started_at=start,
                                 weight_kg=weight, escort_name="Escort Person", escort_confirmed=True, **fields)
            s.add(t)
        s.commit()
        return t.id


def stillwater(app) -> int:
    with new_session(app.extensions["glia"].engine, write=False) as s:
        return s.exec(select(Clinic.id).where(Clinic.slug == "stillwater")).one()


def sign_in(app, client, who: str):
    """Log in and work at Stillwater (the admin belongs to both demo clinics)."""
    login(app, client, who)
    assert post(app, client, "/switch-clinic", {"clinic_id": str(stillwater(app))}).status_code == 302
    return client


def row(app, tid: int) -> TreatmentSession:
    with new_session(app.extensions["glia"].engine, write=False) as s:
        return s.get(TreatmentSession, tid)


def count(app, model, *where) -> int:
    with new_session(app.extensions["glia"].engine, write=False) as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


def dose(app, client, tid: int, **data):
    return post(app, client, f"/sessions/{tid}/monitor", {"version": row(app, tid).version, **POST_DOSE, **data})


def assert_nothing_saved(app, tid: int):
    t = row(app, tid)
    assert t.status == S.in_progress and t.dose_mg is None and t.dosed_at is None and t.dose_override_reason == ""
    assert count(app, VitalSign, VitalSign.treatment_id == tid) == 0


@pytest.fixture
def clinician(app):
    client = app.test_client()
    login(app, client, "clinician")
    return client


# -- esketamine: the labelled doses ----------------------------------------------------------

def test_a_100_mg_esketamine_dose_is_refused_even_with_a_written_override(app, clinician):
    tid = arrange(app, modality=Modality.esketamine_nasal, history=3)
    resp = dose(app, clinician, tid, dose_mg="100", lot_number="LOT-1", override_reason="Patient asked for more")
    assert resp.status_code == 422
    assert "100 mg is above the maximum of 84 mg in one session" in resp.text and "refused" in resp.text
    assert_nothing_saved(app, tid)


def test_70_mg_esketamine_needs_a_written_override_which_is_kept_and_shown(app, clinician):
    tid = arrange(app, modality=Modality.esketamine_nasal, history=3)
    page = clinician.get(f"/sessions/{tid}").text
    assert "This clinic's doses: 56 mg or 84 mg" in page and 'name="override_reason"' in page

    bare = dose(app, clinician, tid, dose_mg="70", lot_number="LOT-1")
    assert bare.status_code == 422
    assert "This dose needs a clinician&#39;s written override" in bare.text
    assert "70 mg is not a labelled dose of Esketamine nasal spray (Spravato)" in bare.text
    assert_nothing_saved(app, tid)

    no_lot = dose(app, clinician, tid, dose_mg="70", override_reason="Tolerability: 84 mg caused severe nausea")
    assert no_lot.status_code == 422 and "Kit lot number is required" in no_lot.text
    assert_nothing_saved(app, tid)

    ok = dose(app, clinician, tid, dose_mg="70", lot_number="LOT-1",
              override_reason="Tolerability: 84 mg caused severe nausea; Ψ reviewed")
    assert ok.status_code == 302
    t = row(app, tid)
    with new_session(app.extensions["glia"].engine, write=False) as s:
        me = s.exec(select(User).where(User.email == "clinician@demo.glia.example")).one()
    assert (t.status, t.dose_mg, t.lot_number) == (S.monitoring, 70.0, "LOT-1")
    assert t.dose_override_reason == "Tolerability: 84 mg caused severe nausea; Ψ reviewed"
    assert t.dose_override_by_id == me.id
    page = clinician.get(f"/sessions/{tid}").text
    assert "Tolerability: 84 mg caused severe nausea; Ψ reviewed" in page and me.name in page
    assert "Kit lot" in page and "LOT-1" in page


def test_84_mg_on_day_1_of_induction_needs_an_override_and_later_it_does_not(app, clinician):
    day1 = arrange(app, modality=Modality.esketamine_nasal)
    refused = dose(app, clinician, day1, dose_mg="84", lot_number="LOT-2")
    assert refused.status_code == 422 and "Day 1 of induction is 56 mg" in refused.text
    assert "First Esketamine nasal spray (Spravato) session (day 1 of induction): 56 mg" in refused.text
    assert_nothing_saved(app, day1)
    assert dose(app, clinician, day1, dose_mg="56", lot_number="LOT-2").status_code == 302
    assert "56 mg (2 devices)" in clinician.get(f"/sessions/{day1}").text

    later = arrange(app, modality=Modality.esketamine_nasal, history=2)
    assert dose(app, clinician, later, dose_mg="84", lot_number="LOT-3").status_code == 302
    t = row(app, later)
    assert t.dose_mg == 84 and t.dose_override_reason == "" and t.dose_override_by_id is None
    assert dose_text(t) == "84 mg (3 devices)"


# -- IV and IM ketamine: by weight ------------------------------------------------------------

def test_iv_ketamine_without_a_weight_is_refused(app, clinician):
    tid = arrange(app, modality=Modality.iv_ketamine)
    resp = dose(app, clinician, tid, dose_mg="35")
    assert resp.status_code == 422
    assert "Weight is required for IV ketamine infusion: the dose is checked in mg/kg" in resp.text
    assert_nothing_saved(app, tid)


def test_iv_ketamine_doses_are_judged_in_mg_per_kg(app, clinician):
    usual = arrange(app, modality=Modality.iv_ketamine, weight=70)
    assert dose(app, clinician, usual, dose_mg="49", duration_minutes="40").status_code == 302  # 0.7 mg/kg
    page = clinician.get(f"/sessions/{usual}").text
    assert "49 mg (0.70 mg/kg at 70.0 kg)" in page

    high = arrange(app, modality=Modality.iv_ketamine, weight=70)
    bare = dose(app, clinician, high, dose_mg="105")  # 1.5 mg/kg
    assert bare.status_code == 422 and "1.50 mg/kg is outside the usual 0.5–1 mg/kg" in bare.text
    assert_nothing_saved(app, high)
    ok = dose(app, clinician, high, dose_mg="105", override_reason="Partial response at 1.0 mg/kg over 6 sessions")
    assert ok.status_code == 302
    assert row(app, high).dose_override_reason == "Partial response at 1.0 mg/kg over 6 sessions"

    ceiling = arrange(app, modality=Modality.iv_ketamine, weight=70)
    refused = dose(app, clinician, ceiling, dose_mg="175", override_reason="I am sure")  # 2.5 mg/kg
    assert refused.status_code == 422
    assert "2.50 mg/kg is above this clinic&#39;s ceiling of 2 mg/kg" in refused.text
    assert_nothing_saved(app, ceiling)


def test_im_ketamine_takes_todays_weight_from_the_dosing_form(app, clinician):
    tid = arrange(app, modality=Modality.im_ketamine)
    assert dose(app, clinician, tid, dose_mg="40", weight_kg="80").status_code == 302  # 0.5 mg/kg
    t = row(app, tid)
    assert (t.weight_kg, dose_text(t)) == (80, "40 mg (0.50 mg/kg at 80.0 kg)")


@pytest.mark.parametrize("bad", ["", "-5", "NaN", "abc", "1e309", "½", "五十", "35 mg"])
def test_bad_doses_get_a_message_and_write_nothing(app, clinician, bad):
    tid = arrange(app, modality=Modality.iv_ketamine, weight=70)
    resp = dose(app, clinician, tid, dose_mg=bad, weight_kg=bad if bad else "70")
    assert resp.status_code == 422 and 'id="e-dose_mg"' in resp.text  # the message sits at the dose field
    assert_nothing_saved(app, tid)


def test_the_dosing_time_is_today_not_in_the_future_nor_before_the_start(app, clinician):
    tz = midday_zone()
    with new_session(app.extensions["glia"].engine) as s:
        c = s.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
        c.timezone = tz
        s.add(c)
        s.commit()
    from zoneinfo import ZoneInfo

    def hhmm(moment: datetime) -> str:
        return moment.astimezone(ZoneInfo(tz)).strftime("%H:%M")

    tid = arrange(app, modality=Modality.iv_ketamine, weight=70)  # started 20 minutes ago
    for when, message in ((utcnow() + timedelta(minutes=30), "that time is still to come today"),
                          (utcnow() - timedelta(minutes=60), "that is before the session started"),
                          ("25:99", "enter a time such as 09:30")):
        resp = dose(app, clinician, tid, dose_mg="35", dosed_time=when if isinstance(when, str) else hhmm(when))
        assert resp.status_code == 422 and message in resp.text
        assert_nothing_saved(app, tid)
    began = utcnow() - timedelta(minutes=10)
    assert dose(app, clinician, tid, dose_mg="35", dosed_time=hhmm(began)).status_code == 302
    assert hhmm(row(app, tid).dosed_at) == hhmm(began)


# -- the clinic's own limits ---------------------------------------------------------------

def limits_row(app, modality: Modality):
    with new_session(app.extensions["glia"].engine, write=False) as s:
        return s.exec(select(DoseLimit).where(DoseLimit.clinic_id == stillwater(app), DoseLimit.modality == modality)).first()


IV_DEFAULTS = {"usual_min": "0.5", "usual_max": "1", "ceiling": "2", "min_observation_minutes": "30"}


def test_a_manager_tightens_the_iv_ceiling_and_a_dose_above_it_is_then_refused(app, client, clinician):
    login(app, client, "manager")
    assert "Safety limits" in client.get("/settings/clinic").text
    page = client.get("/settings/safety/")
    assert page.status_code == 200 and "IV ketamine infusion" in page.text
    audits = count(app, AuditEvent, AuditEvent.action == "dose_limit.update")
    resp = post(app, client, "/settings/safety/iv_ketamine", {**IV_DEFAULTS, "ceiling": "1.5", "min_observation_minutes": "45"})
    assert resp.status_code == 302
    saved = limits_row(app, Modality.iv_ketamine)
    assert (saved.ceiling, saved.min_observation_minutes, saved.usual_max) == (1.5, 45, 1.0)
    assert count(app, AuditEvent, AuditEvent.action == "dose_limit.update") == audits + 1

    tid = arrange(app, modality=Modality.iv_ketamine, weight=70)
    refused = dose(app, clinician, tid, dose_mg="112", override_reason="Needed")  # 1.6 mg/kg
    assert refused.status_code == 422 and "ceiling of 1.5 mg/kg" in refused.text


def test_spravato_limits_cannot_be_loosened_by_anyone(app, client):
    sign_in(app, client, "admin")
    for change in ({"ceiling": "112"}, {"min_observation_minutes": "60"}):
        data = {"dose_56": "1", "dose_84": "1", "ceiling": "84", "min_observation_minutes": "120", **change}
        resp = post(app, client, "/settings/safety/esketamine_nasal", data)
        assert resp.status_code == 422 and "A clinic may tighten these, never loosen them" in resp.text
    assert limits_row(app, Modality.esketamine_nasal) is None
    tightened = post(app, client, "/settings/safety/esketamine_nasal",
                     {"dose_56": "1", "ceiling": "56", "min_observation_minutes": "150"})
    assert tightened.status_code == 302
    saved = limits_row(app, Modality.esketamine_nasal)
    assert (saved.allowed_doses, saved.ceiling, saved.min_observation_minutes) == ([56.0], 56.0, 150)


def test_loosening_iv_limits_needs_an_admin_and_is_audited_with_the_change(app, client):
    login(app, client, "manager")
    refused = post(app, client, "/settings/safety/iv_ketamine", {**IV_DEFAULTS, "ceiling": "2.5"})
    assert refused.status_code == 422 and "needs an administrator" in refused.text
    assert limits_row(app, Modality.iv_ketamine) is None
    assert count(app, AuditEvent, AuditEvent.action == "dose_limit.loosen", AuditEvent.outcome == "denied") == 1

    admin = app.test_client()
    sign_in(app, admin, "admin")
    assert post(app, admin, "/settings/safety/iv_ketamine",
                {**IV_DEFAULTS, "ceiling": "2.5", "min_observation_minutes": "20"}).status_code == 302
    with new_session(app.extensions["glia"].engine, write=False) as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.action == "dose_limit.loosen",
                                                AuditEvent.outcome == "ok")).one()
    assert "ceiling 2→2.5" in event.detail and "min_observation_minutes 30→20" in event.detail
    assert limits_row(app, Modality.iv_ketamine).ceiling == 2.5


def test_front_desk_and_clinicians_cannot_change_limits(app, client):
    for who in ("frontdesk", "clinician"):
        c = app.test_client()
        login(app, c, who)
        assert c.get("/settings/safety/").status_code == 403
        assert post(app, c, "/settings/safety/iv_ketamine", {**IV_DEFAULTS, "ceiling": "1.5"}).status_code == 403
    assert limits_row(app, Modality.iv_ketamine) is None


@pytest.mark.parametrize("field", ["usual_min", "ceiling", "min_observation_minutes"])
@pytest.mark.parametrize("bad", ["", "-1", "NaN", "abc", "1e309", "Ψ", "½", "0.5.1"])
def test_bad_limit_input_gets_a_message_and_writes_nothing(app, client, field, bad):
    sign_in(app, client, "admin")
    resp = post(app, client, "/settings/safety/iv_ketamine", {**IV_DEFAULTS, field: bad})
    assert resp.status_code == 422 and "Nothing was saved" in resp.text
    assert limits_row(app, Modality.iv_ketamine) is None


def test_limits_that_contradict_themselves_are_refused(app, client):
    sign_in(app, client, "admin")
    upside_down = post(app, client, "/settings/safety/sublingual",
                       {"usual_min": "300", "usual_max": "100", "ceiling": "400", "min_observation_minutes": "30"})
    assert upside_down.status_code == 422 and "must end at or above where it starts" in upside_down.text
    no_dose = post(app, client, "/settings/safety/esketamine_nasal", {"ceiling": "84", "min_observation_minutes": "120"})
    assert no_dose.status_code == 422 and "Allow at least one labelled dose" in no_dose.text
    assert post(app, client, "/settings/safety/opium", IV_DEFAULTS).status_code == 404
    assert limits_row(app, Modality.sublingual) is None and limits_row(app, Modality.esketamine_nasal) is None
