"""Monitoring that the clock enforces: no discharge before the modality's minimum observation,
the clinician who judged the patient ready on record, and the dosing details on the session page
and the chart. Also the pre-dose blood-pressure re-check."""
from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from core.db import new_session
from core.models import (Clinic, Modality, SessionStatus, SideEffect, TreatmentSession, User, VitalPhase, VitalSign,
                         utcnow)
from tests.support import login, post
from tests.test_dosing import arrange, count, row, sign_in

S = SessionStatus
LEAVING = {"discharge_systolic": "124", "discharge_diastolic": "80", "released_to_escort": "1"}


def monitoring(app, modality: Modality, *, dosed_minutes_ago: float, effects=(), **fields) -> int:
    """A session being monitored, dosed ``dosed_minutes_ago`` (the row written directly)."""
    dosed = utcnow() - timedelta(minutes=dosed_minutes_ago)
    defaults = {"dose_mg": 56.0, "lot_number": "LOT-9"} if modality == Modality.esketamine_nasal else {"dose_mg": 35.0}
    tid = arrange(app, modality=modality, status=S.monitoring, weight=70, dosed_at=dosed, monitoring_at=dosed,
                  **{**defaults, **fields})
    with new_session(app.extensions["glia"].engine) as s:
        for effect in effects:
            s.add(SideEffect(clinic_id=row(app, tid).clinic_id, treatment_id=tid, effect=effect, severity="mild",
                             recorded_at=dosed))
        s.commit()
    return tid


def set_dosed(app, tid: int, minutes_ago: float) -> None:
    with new_session(app.extensions["glia"].engine) as s:
        t = s.get(TreatmentSession, tid)
        t.dosed_at = utcnow() - timedelta(minutes=minutes_ago)
        s.add(t)
        s.commit()


def effect_ids(app, tid: int) -> list[int]:
    with new_session(app.extensions["glia"].engine, write=False) as s:
        return list(s.exec(select(SideEffect.id).where(SideEffect.treatment_id == tid).order_by(SideEffect.id)).all())


def discharge(app, client, tid: int, **data):
    return post(app, client, f"/sessions/{tid}/discharge", {"version": row(app, tid).version, **LEAVING, **data})


def clock_text(app, moment) -> str:
    with new_session(app.extensions["glia"].engine, write=False) as s:
        tz = s.exec(select(Clinic.timezone).where(Clinic.slug == "stillwater")).one()
    return moment.astimezone(ZoneInfo(tz)).strftime("%I:%M %p").lstrip("0")


def me(app, email_local: str) -> User:
    with new_session(app.extensions["glia"].engine, write=False) as s:
        return s.exec(select(User).where(User.email == f"{email_local}@demo.glia.example")).one()


@pytest.fixture
def clinician(app):
    client = app.test_client()
    login(app, client, "clinician")
    return client


def test_a_spravato_discharge_one_minute_after_dosing_is_refused_with_the_time_it_becomes_possible(app, clinician):
    tid = monitoring(app, Modality.esketamine_nasal, dosed_minutes_ago=1, effects=("dissociation",))
    possible = clock_text(app, row(app, tid).dosed_at + timedelta(minutes=120))
    page = clinician.get(f"/sessions/{tid}").text
    assert f"Discharge possible from <strong>{possible}</strong>" in page and "in 1 h 59 min" in page

    [effect] = effect_ids(app, tid)
    answers = {"ready_minutes": "0", f"resolved_{effect}": "yes", "notes": "Calm"}
    refused = discharge(app, clinician, tid, **answers)
    assert refused.status_code == 422
    assert f"Discharge possible from {possible}" in refused.text
    assert "at least 120 minutes of observation after dosing (label minimum; no override)" in refused.text
    t = row(app, tid)
    assert t.status == S.monitoring and t.discharge_ready_by_id is None and t.notes == ""
    assert count(app, VitalSign, VitalSign.treatment_id == tid, VitalSign.phase == VitalPhase.discharge) == 0
    with new_session(app.extensions["glia"].engine, write=False) as s:
        assert s.get(SideEffect, effect).resolved is None

    set_dosed(app, tid, 121)  # two hours later
    done = discharge(app, clinician, tid, **{**answers, "ready_minutes": "95"})
    assert done.status_code == 302
    t = row(app, tid)
    assert (t.status, t.ready_minutes, t.discharge_ready_by_id, t.notes) == (S.discharged, 95, me(app, "clinician").id, "Calm")
    with new_session(app.extensions["glia"].engine, write=False) as s:
        assert s.get(SideEffect, effect).resolved is True
    page = clinician.get(f"/sessions/{tid}").text
    assert "judged ready to leave by Dr. Cleo Clinician (demo)" in page
    assert "121 min from dosing to discharge" in page and "after 95 min, but for the 2-hour minimum" in page
    assert "resolved by discharge" in page and "56 mg (2 devices)" in page


def test_spravato_discharge_asks_when_the_patient_would_have_been_ready(app, clinician):
    tid = monitoring(app, Modality.esketamine_nasal, dosed_minutes_ago=130)
    for bad, message in (("", "Ready to leave after is required"), ("abc", "enter a whole number"),
                         ("-1", "must be between 0 and 600"), ("601", "must be between 0 and 600"),
                         ("NaN", "enter a whole number"), ("٩٠٠", "must be between 0 and 600"),
                         ("200", "more minutes than have passed since the first device")):
        resp = discharge(app, clinician, tid, ready_minutes=bad)
        assert resp.status_code == 422 and message in resp.text, bad
        assert row(app, tid).status == S.monitoring
    assert discharge(app, clinician, tid, ready_minutes="130").status_code == 302


def test_iv_discharge_after_30_minutes_of_recovery_is_allowed(app, clinician):
    tid = monitoring(app, Modality.iv_ketamine, dosed_minutes_ago=31)
    assert discharge(app, clinician, tid).status_code == 302
    assert row(app, tid).status == S.discharged


def test_iv_recovery_is_counted_from_the_end_of_the_infusion(app, clinician):
    tid = monitoring(app, Modality.iv_ketamine, dosed_minutes_ago=50, duration_minutes=40)  # ended 10 min ago
    refused = discharge(app, clinician, tid)
    assert refused.status_code == 422
    assert "at least 30 minutes of observation after the infusion ends" in refused.text
    assert f"Discharge possible from {clock_text(app, row(app, tid).dosed_at + timedelta(minutes=70))}" in refused.text
    set_dosed(app, tid, 71)
    assert discharge(app, clinician, tid).status_code == 302


def test_the_clinics_own_observation_time_applies(app, clinician):
    admin = app.test_client()
    sign_in(app, admin, "admin")
    assert post(app, admin, "/settings/safety/im_ketamine", {"usual_min": "0.5", "usual_max": "1", "ceiling": "2",
                                                             "min_observation_minutes": "60"}).status_code == 302
    tid = monitoring(app, Modality.im_ketamine, dosed_minutes_ago=45)
    assert discharge(app, clinician, tid).status_code == 422
    set_dosed(app, tid, 61)
    assert discharge(app, clinician, tid).status_code == 302


def test_each_side_effect_gets_its_resolution_at_discharge(app, clinician):
    tid = monitoring(app, Modality.iv_ketamine, dosed_minutes_ago=45, effects=("nausea", "dizziness"))
    nausea, dizziness = effect_ids(app, tid)
    missing = discharge(app, clinician, tid, **{f"resolved_{nausea}": "yes", f"resolved_{dizziness}": "maybe"})
    assert missing.status_code == 422 and "Say whether this side effect has resolved" in missing.text
    assert row(app, tid).status == S.monitoring
    assert discharge(app, clinician, tid, **{f"resolved_{nausea}": "yes", f"resolved_{dizziness}": "no"}).status_code == 302
    with new_session(app.extensions["glia"].engine, write=False) as s:
        assert (s.get(SideEffect, nausea).resolved, s.get(SideEffect, dizziness).resolved) == (True, False)


def test_only_a_clinician_or_admin_can_discharge(app):
    tid = monitoring(app, Modality.iv_ketamine, dosed_minutes_ago=45)
    for who in ("frontdesk", "manager"):
        c = app.test_client()
        login(app, c, who)
        assert discharge(app, c, tid).status_code == 403
    admin = app.test_client()
    sign_in(app, admin, "admin")
    assert discharge(app, admin, tid).status_code == 302
    assert row(app, tid).discharge_ready_by_id == me(app, "admin").id


def test_the_chart_lists_each_sessions_dose_and_discharge(app, clinician):
    tid = monitoring(app, Modality.iv_ketamine, dosed_minutes_ago=45, dose_mg=49.0)
    assert discharge(app, clinician, tid, notes="Steady gait; left with escort Zoë").status_code == 302
    esk = arrange(app, modality=Modality.esketamine_nasal, status=S.monitoring, dose_mg=70.0, lot_number="LOT-77",
                  dosed_at=utcnow() - timedelta(minutes=125), monitoring_at=utcnow(),
                  dose_override_reason="Tolerability at 84 mg", dose_override_by_id=me(app, "clinician").id)
    with new_session(app.extensions["glia"].engine, write=False) as s:
        patient_id = s.get(TreatmentSession, tid).patient_id
    chart = clinician.get(f"/patients/{patient_id}").text
    assert "49 mg (0.70 mg/kg at 70.0 kg)" in chart and "Steady gait; left with escort Zoë" in chart
    assert "Discharged by" in chart and "Dr. Cleo Clinician (demo)" in chart and "Observed" in chart
    other = clinician.get(f"/patients/{row(app, esk).patient_id}").text
    assert "70 mg" in other and "LOT-77" in other and "Tolerability at 84 mg" in other

    desk = app.test_client()
    login(app, desk, "frontdesk")
    assert "Steady gait" not in desk.get(f"/patients/{patient_id}").text  # clinical notes stay clinical


def test_blood_pressure_can_be_rechecked_before_the_start(app, client):
    tid = arrange(app, modality=Modality.iv_ketamine, status=S.checked_in, weight=70)
    login(app, client, "frontdesk")
    first = {"baseline_systolic": "168", "baseline_diastolic": "102"}
    assert post(app, client, f"/sessions/{tid}/vitals", {"version": row(app, tid).version, **first}).status_code == 302
    page = client.get(f"/sessions/{tid}").text
    assert "Re-check blood pressure" in page and "Latest reading 168/102" in page
    stale = row(app, tid).version - 1
    again = {"baseline_systolic": "138", "baseline_diastolic": "86"}
    assert post(app, client, f"/sessions/{tid}/vitals", {"version": stale, **again}).status_code == 409
    bad = post(app, client, f"/sessions/{tid}/vitals", {"version": row(app, tid).version, "baseline_systolic": "１三八",
                                                        "baseline_diastolic": ""})
    assert bad.status_code == 422
    assert post(app, client, f"/sessions/{tid}/vitals", {"version": row(app, tid).version, **again}).status_code == 302
    assert count(app, VitalSign, VitalSign.treatment_id == tid, VitalSign.phase == VitalPhase.baseline) == 2
    assert "Latest reading 138/86" in client.get(f"/sessions/{tid}").text
