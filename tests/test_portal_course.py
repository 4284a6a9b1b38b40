"""The patient's course in the portal: every upcoming session with what to bring, fasting and escort
reminders for its modality; asking to move or cancel one, which the front desk sees and handles.
A patient sees only their own sessions, and one clinic never sees another's requests."""
from __future__ import annotations

import re
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlmodel import select

from core import workflow
from core.db import session_scope
from core.models import (AuditEvent, ChangeRequest, Clinic, Modality, Patient, SessionStatus, TreatmentSession,
                         utcnow)
from tests.support import login, post

SPRAVATO_DRIVE = "Do not drive or operate machinery until the next day, after a restful sleep."
SPRAVATO_FOOD = "do not eat for at least 2 hours before"
IV_FOOD = "Do not eat for 4 hours before your appointment."
IV_ESCORT = "An adult must take you home. Do not drive, cycle or operate machinery until the next day."


def clinic_of(db, slug: str = "stillwater") -> Clinic:
    return db.exec(select(Clinic).where(Clinic.slug == slug)).one()


def portal_patient(db, slug: str = "stillwater") -> Patient:
    return db.exec(select(Patient).where(Patient.clinic_id == clinic_of(db, slug).id, Patient.user_id.is_not(None))).one()


def other_patient(db, slug: str = "stillwater") -> Patient:
    return db.exec(select(Patient).where(Patient.clinic_id == clinic_of(db, slug).id, Patient.user_id.is_(None))
                   .order_by(Patient.id)).first()


def local_at(clinic: Clinic, days: int, hour: int = 10, minute: int = 0) -> datetime:
    zone = ZoneInfo(clinic.timezone)
    day = utcnow().astimezone(zone).date() + timedelta(days=days)
    return datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(timezone.utc)


def add_session(app, patient: Patient, when: datetime, modality=Modality.iv_ketamine,
                status=SessionStatus.scheduled) -> int:
    with session_scope(app.extensions["glia"].engine) as s, workflow.importing(s):  # history, as the demo writes it
        provider_id = s.exec(select(TreatmentSession.provider_id).where(
            TreatmentSession.clinic_id == patient.clinic_id)).first()
        t = TreatmentSession(clinic_id=patient.clinic_id, patient_id=patient.id, provider_id=provider_id,
                             modality=modality, status=status, scheduled_at=when,
                             escort_name=patient.escort_name, escort_phone=patient.escort_phone)
        s.add(t)
        s.flush()
        return t.id


def clear_upcoming(app, patient: Patient) -> None:
    """Cancel what the demo booked for this patient, so a test sets out the course it needs."""
    with session_scope(app.extensions["glia"].engine) as s, workflow.importing(s):
        for t in s.exec(select(TreatmentSession).where(
                TreatmentSession.patient_id == patient.id,
                TreatmentSession.status.in_([SessionStatus.scheduled, SessionStatus.checked_in]))).all():
            t.status, t.ended_at = SessionStatus.cancelled, utcnow()
            s.add(t)


def visits(html: str) -> dict[int, str]:
    """Each session card of the portal page, by session id."""
    parts = re.split(r'(?=<li class="card visit)', html)[1:]
    last = parts[-1].split("</ol>")[0] if parts else ""
    parts = [*parts[:-1], last] if parts else []
    return {int(re.search(r'id="visit-(\d+)"', p).group(1)): p for p in parts}


def audits(db, action: str) -> list[AuditEvent]:
    db.rollback()
    return db.exec(select(AuditEvent).where(AuditEvent.action == action)).all()


def test_every_upcoming_session_is_listed_with_the_instructions_for_its_modality(app, client, db):
    clinic, patient = clinic_of(db), portal_patient(db)
    iv = add_session(app, patient, local_at(clinic, 2, 9, 30))
    spravato = add_session(app, patient, local_at(clinic, 6, 13), Modality.esketamine_nasal)
    past = add_session(app, patient, local_at(clinic, -3), status=SessionStatus.discharged)
    cancelled = add_session(app, patient, local_at(clinic, 5), status=SessionStatus.cancelled)
    someone_else = add_session(app, other_patient(db), local_at(clinic, 3, 11))
    login(app, client, "patient")
    page = client.get("/portal/")
    assert page.status_code == 200
    cards = visits(page.text)
    assert iv in cards and spravato in cards
    assert not {past, cancelled, someone_else} & set(cards)
    # times in the clinic's zone (Stillwater is on Pacific time), however the server's clock is set
    assert "at 9:30 AM" in cards[iv] and "at 1:00 PM" in cards[spravato]
    assert IV_FOOD in cards[iv] and IV_ESCORT in cards[iv] and "about 1 h 30 min" in cards[iv]
    assert SPRAVATO_FOOD in cards[spravato] and SPRAVATO_DRIVE in cards[spravato]
    assert "nasal steroid or decongestant spray" in cards[spravato] and "about 2 h 30 min" in cards[spravato]
    assert SPRAVATO_DRIVE not in cards[iv] and IV_FOOD not in cards[spravato]
    assert "A photo ID" in cards[iv] and "A photo ID" in cards[spravato]
    assert f"On file for this visit: {patient.escort_name}" in cards[iv]
    order = list(cards)
    db.rollback()
    assert order == sorted(order, key=lambda i: db.get(TreatmentSession, i).scheduled_at)  # soonest first
    assert 'class="card visit next-visit"' in cards[order[0]]  # the next one stands out, its instructions open
    assert audits(db, "portal.view")[-1].patient_id == patient.id


def test_a_patient_of_another_clinic_sees_none_of_these_sessions(app, db):
    clinic, patient = clinic_of(db), portal_patient(db)
    mine = add_session(app, patient, local_at(clinic, 2))
    harbor = app.test_client()
    login(app, harbor, "harbor.patient")
    page = harbor.get("/portal/")
    assert page.status_code == 200 and mine not in visits(page.text)
    assert patient.legal_last_name not in page.text
    assert harbor.get(f"/portal/sessions/{mine}/change").status_code == 404


def test_a_change_request_is_stored_audited_seen_by_staff_and_handled(app, client, db):
    clinic, patient = clinic_of(db), portal_patient(db)
    t = add_session(app, patient, local_at(clinic, 3, 10))
    login(app, client, "patient")
    form = client.get(f"/portal/sessions/{t}/change")
    assert form.status_code == 200 and 'name="reason"' in form.text
    sent = post(app, client, f"/portal/sessions/{t}/change",
                {"kind": "move", "reason": "escort", "note": "Afternoons after 2 work for me."})
    assert sent.status_code == 302
    db.rollback()
    req = db.exec(select(ChangeRequest).where(ChangeRequest.treatment_id == t)).one()
    assert (req.clinic_id, req.patient_id, req.kind, req.reason, req.handled_at) == (clinic.id, patient.id, "move",
                                                                                     "escort", None)
    assert req.note == "Afternoons after 2 work for me."
    logged = audits(db, "portal.change_request")[-1]
    assert (logged.object_id, logged.patient_id) == (str(req.id), patient.id)
    assert "Afternoons" not in logged.detail  # ids in the audit log, never what the patient wrote
    home = client.get("/portal/")
    assert "You asked to move this session" in visits(home.text)[t]
    again = post(app, client, f"/portal/sessions/{t}/change", {"kind": "cancel", "reason": "unwell"})
    assert again.status_code == 302
    db.rollback()
    assert len(db.exec(select(ChangeRequest).where(ChangeRequest.treatment_id == t)).all()) == 1

    desk = app.test_client()
    login(app, desk, "frontdesk")
    today = desk.get("/")
    card = today.text.split('id="requests-h"')[1].split("</section>")[0]
    assert patient.display_name in card and "My escort cannot come" in card and "Afternoons after 2" in card
    assert f'href="/schedule/sessions/{t}/move"' in card
    assert desk.get(f"/schedule/sessions/{t}/move").status_code == 200  # the link leads to the move page

    clinician = app.test_client()
    login(app, clinician, "clinician")
    chart = clinician.get(f"/patients/{patient.id}")
    assert "Requests from the portal" in chart.text and "Afternoons after 2" in chart.text

    other_clinic = app.test_client()
    login(app, other_clinic, "harbor.frontdesk")
    assert "Afternoons after 2" not in other_clinic.get("/").text
    assert post(app, other_clinic, f"/portal-requests/{req.id}/handled").status_code == 404
    db.rollback()
    assert db.get(ChangeRequest, req.id).handled_at is None

    done = post(app, desk, f"/portal-requests/{req.id}/handled", {"back": "dashboard"})
    assert done.status_code == 302
    db.rollback()
    handled = db.get(ChangeRequest, req.id)
    assert handled.handled_at is not None and handled.handled_by_id is not None
    assert audits(db, "change_request.handle")[-1].object_id == str(req.id)
    assert 'id="requests-h"' not in desk.get("/").text
    assert "Ask to move or cancel" in visits(client.get("/portal/").text)[t]  # the patient may ask again


def test_a_change_request_without_a_reason_is_refused_and_writes_nothing(app, client, db):
    clinic, patient = clinic_of(db), portal_patient(db)
    t = add_session(app, patient, local_at(clinic, 3))
    login(app, client, "patient")
    refused = post(app, client, f"/portal/sessions/{t}/change", {"kind": "move", "reason": "", "note": "x" * 301})
    assert refused.status_code == 422
    assert "Choose a reason." in refused.text and "at most 300 characters" in refused.text
    db.rollback()
    assert db.exec(select(ChangeRequest).where(ChangeRequest.treatment_id == t)).all() == []


def test_another_patients_session_a_past_or_checked_in_one_answers_404(app, client, db):
    clinic, patient = clinic_of(db), portal_patient(db)
    theirs = add_session(app, other_patient(db), local_at(clinic, 2))
    harbor = add_session(app, other_patient(db, "harbor"), local_at(clinic_of(db, "harbor"), 2))
    past = add_session(app, patient, local_at(clinic, -2), status=SessionStatus.discharged)
    arrived = add_session(app, patient, local_at(clinic, 0, 23, 30), status=SessionStatus.checked_in)  # at the desk now
    login(app, client, "patient")
    assert "Ask to move or cancel" not in visits(client.get("/portal/").text)[arrived]
    for t in (theirs, harbor, past, arrived, 999_999):
        assert client.get(f"/portal/sessions/{t}/change").status_code == 404
        assert post(app, client, f"/portal/sessions/{t}/change", {"kind": "cancel", "reason": "other"}).status_code == 404
    db.rollback()
    assert db.exec(select(ChangeRequest).where(ChangeRequest.treatment_id.in_([theirs, harbor, past, arrived]))).all() == []
    denied = [e for e in audits(db, "portal.session_access") if e.outcome == "denied"]
    assert {e.object_id for e in denied} >= {str(theirs), str(harbor), str(past), str(arrived)}
    assert all(e.patient_id == patient.id for e in denied)
