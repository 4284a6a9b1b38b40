"""The treatment-session workflow: forward only, stale forms refused, blockers stop the start."""
from __future__ import annotations

import types
from datetime import timedelta

from sqlmodel import func, select

from core.db import new_session
from core.hookspecs import hookimpl
from core.models import (AuditEvent, Clinic, Patient, SessionStatus, SideEffect, TreatmentSession, VitalPhase,
                         VitalSign, utcnow)
from core.slots import Blocker
from tests.support import login, post

S = SessionStatus


def plugin(name: str, **hooks):
    """A tiny plugin module made of the given hook functions."""
    module = types.ModuleType(name)
    module.__file__ = __file__  # no migrations of its own
    for hook, fn in hooks.items():
        setattr(module, hook, hookimpl(fn))
    return name, module


def session_of(db, mrn: str, status: SessionStatus) -> TreatmentSession:
    patient = db.exec(select(Patient).where(Patient.mrn == mrn)).one()
    return db.exec(select(TreatmentSession).where(TreatmentSession.patient_id == patient.id,
                                                  TreatmentSession.status == status)).first()


def reader(db):
    """A new read-only session: sees what requests committed since ``db`` took its snapshot."""
    return new_session(db.get_bind(), write=False)


def fresh(db, t: TreatmentSession) -> TreatmentSession:
    with reader(db) as s:
        return s.get(TreatmentSession, t.id)


def count(db, model, *where) -> int:
    with reader(db) as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


def effect_id(db, t: TreatmentSession) -> int:
    with reader(db) as s:
        return s.exec(select(SideEffect.id).where(SideEffect.treatment_id == t.id)).one()


def dosed_long_ago(db, t: TreatmentSession) -> None:
    """Move the dosing time back past the observation minimum (core.dosing has its own clock tests)."""
    with new_session(db.get_bind()) as s:
        row = s.get(TreatmentSession, t.id)
        row.dosed_at = utcnow() - timedelta(hours=3)
        s.add(row)
        s.commit()


def test_session_moves_forward_once_and_fires_treatment_completed(make_app, db):
    completed = []
    app = make_app(plugins=[plugin("recorder", treatment_completed=lambda treatment: completed.append(treatment.id))])
    client = app.test_client()
    login(app, client, "clinician")
    t = session_of(db, "ST1001", S.checked_in)  # checked in with baseline vitals
    url = f"/sessions/{t.id}"
    assert "All pre-treatment checks pass" in client.get(url).text

    assert post(app, client, f"{url}/start", {"version": t.version}).status_code == 302
    again = post(app, client, f"{url}/start", {"version": t.version})  # the same form sent twice
    assert again.status_code == 409 and "changed since you opened the page" in again.text
    t = fresh(db, t)
    assert t.status == S.in_progress and t.started_at is not None

    bad = post(app, client, f"{url}/monitor", {"version": t.version, "dose_mg": "nan", "post_systolic": "80",
                                              "post_diastolic": "120", "effect_nausea": "terrible"})
    assert bad.status_code == 422
    for message in ("Dose (mg) must be between", "Diastolic pressure must be below systolic", "Choose mild"):
        assert message in bad.text
    assert fresh(db, t).status == S.in_progress
    assert count(db, VitalSign, VitalSign.treatment_id == t.id, VitalSign.phase == VitalPhase.post_dose) == 0

    ok = post(app, client, f"{url}/monitor", {"version": t.version, "dose_mg": "44", "weight_kg": "80", "post_systolic": "142",
                                             "post_diastolic": "88", "effect_dissociation": "moderate",
                                             "status": "discharged", "clinic_id": "2"})
    assert ok.status_code == 302
    t = fresh(db, t)
    assert t.status == S.monitoring and t.dose_mg == 44 and t.clinic_id == 1
    assert count(db, SideEffect, SideEffect.treatment_id == t.id) == 1

    backwards = post(app, client, f"{url}/check-in", {"version": t.version, "escort_confirmed": "1",
                                                      "escort_name": "Someone"})
    assert backwards.status_code == 409 and "cannot check in" in backwards.text
    assert post(app, client, f"{url}/cancel", {"version": t.version, "confirm": "yes"}).status_code == 409
    assert completed == []

    leaving = {"version": t.version, "discharge_systolic": "126", "discharge_diastolic": "80", "released_to_escort": "1",
               f"resolved_{effect_id(db, t)}": "yes"}
    too_soon = post(app, client, f"{url}/discharge", leaving)  # recovery after dosing has not passed yet
    assert too_soon.status_code == 422 and "Discharge possible from" in too_soon.text
    dosed_long_ago(db, t)
    done = post(app, client, f"{url}/discharge", leaving)
    assert done.status_code == 302
    assert fresh(db, t).status == S.discharged
    assert completed == [t.id]


def test_check_in_needs_escort_and_start_needs_baseline_vitals(app, client, db):
    t = session_of(db, "ST1000", S.scheduled)
    url = f"/sessions/{t.id}"
    login(app, client, "frontdesk")
    missing = post(app, client, f"{url}/check-in", {"version": t.version, "escort_name": ""})
    assert missing.status_code == 422
    assert "Confirm that the escort" in missing.text and "Escort name is required" in missing.text
    assert fresh(db, t).status == S.scheduled
    assert post(app, client, f"{url}/check-in", {"version": t.version, "escort_confirmed": "1",
                                                 "escort_name": "Zoë Ψυχή"}).status_code == 302
    t = fresh(db, t)
    assert t.status == S.checked_in and t.escort_name == "Zoë Ψυχή"
    assert post(app, client, f"{url}/start", {"version": t.version}).status_code == 403  # front desk never starts

    clinician = app.test_client()
    login(app, clinician, "clinician")
    page = clinician.get(url).text
    assert "Baseline vital signs have not been recorded" in page
    refused = post(app, clinician, f"{url}/start", {"version": t.version})
    assert refused.status_code == 409 and "Baseline vital signs have not been recorded" in refused.text
    assert post(app, clinician, f"{url}/vitals", {"version": t.version, "baseline_systolic": "124",
                                                  "baseline_diastolic": "78"}).status_code == 302
    t = fresh(db, t)
    assert post(app, clinician, f"{url}/start", {"version": t.version}).status_code == 302
    assert fresh(db, t).status == S.in_progress


def test_plugin_blockers_refuse_the_start_and_a_failing_check_fails_closed(make_app, db):
    def consent_blocker(patient):
        return [Blocker("Informed consent for IV ketamine is not signed.", f"/consent/patients/{patient.id}")]

    def broken(treatment):
        raise RuntimeError("database of contraindications unavailable")

    app = make_app(plugins=[plugin("gate", treatment_blockers=consent_blocker),
                            plugin("flaky", treatment_blockers=broken)])
    client = app.test_client()
    login(app, client, "clinician")
    t = session_of(db, "ST1001", S.checked_in)
    shown = client.get(f"/sessions/{t.id}").text
    assert "Informed consent for IV ketamine is not signed." in shown  # visible before trying
    refused = post(app, client, f"/sessions/{t.id}/start", {"version": t.version})
    assert refused.status_code == 409
    assert "Informed consent for IV ketamine is not signed." in refused.text
    assert f'href="/consent/patients/{t.patient_id}"' in refused.text
    assert "A safety check could not run (the flaky plugin failed)" in refused.text
    assert fresh(db, t).status == S.checked_in and fresh(db, t).version == t.version


def test_another_clinics_session_is_404_and_audited(app, client, db):
    harbor = db.exec(select(Clinic).where(Clinic.slug == "harbor")).one()
    theirs = db.exec(select(TreatmentSession).where(TreatmentSession.clinic_id == harbor.id,
                                                    TreatmentSession.status == S.scheduled)).first()
    login(app, client, "clinician")
    denied_before = count(db, AuditEvent, AuditEvent.outcome == "denied")
    assert client.get(f"/sessions/{theirs.id}").status_code == 404
    assert post(app, client, f"/sessions/{theirs.id}/cancel", {"version": theirs.version}).status_code == 404
    assert count(db, AuditEvent, AuditEvent.outcome == "denied") == denied_before + 2
    assert fresh(db, theirs).status == S.scheduled
