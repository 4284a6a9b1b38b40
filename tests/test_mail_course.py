"""The course's e-mail beyond booking, through a real SMTP server on loopback (aiosmtpd): a receipt
ready in the portal, the questionnaire due that `glia mail reminders` sends by the clinic's rule, and
the updated confirmation or cancellation of a moved or cancelled session, its .ics parsed back with
icalendar. A questionnaire staff enter on the chart counts for the portal as the patient's own would.
"""
from __future__ import annotations

import time
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlmodel import select

from core.db import session_scope
from core.mail.models import MailKind
from core.models import OutcomeScore, Patient, TreatmentSession, User
from core.scheduling.models import Booking
from tests.support import login, post
from tests.test_mail import mail_app, smtp_server  # noqa: F401 - the same fixtures: a real SMTP server on loopback
from tests.test_mail import (assert_no_phi, clinic_of, ics_of, messages_of, patient_without_portal,
                             phi_of, run_cli, text_of)
from tests.test_portal_course import add_session, local_at, portal_patient
from tests.test_portal_questionnaires import GAD7_SEVERE, PHQ9_MODERATE, answers, course

QUESTIONNAIRE = "A questionnaire before your visit to {}"


def settle(server, count: int):
    """Wait for ``count`` messages, then a moment more so one too many would show."""
    server.wait_for(count)
    time.sleep(0.3)
    return server.messages


# -- 1. receipts -------------------------------------------------------------------------------

def test_a_recorded_payment_tells_its_portal_patient_a_receipt_is_ready(mail_app, smtp_server, db):
    from tests.test_billing_documents import pay
    from tests.test_billing_web import _invoice_from_draft, complete_session

    client = mail_app.test_client()
    login(mail_app, client, "manager")
    tid, pid = complete_session(mail_app, "ST1000")  # the demo's portal patient
    iid = _invoice_from_draft(mail_app, client, tid)
    assert smtp_server.messages == []
    pay(mail_app, client, iid, method="cash")
    [msg] = settle(smtp_server, 1)
    clinic, patient = clinic_of(db), db.get(Patient, pid)
    assert msg["To"] == patient.email and msg["Subject"] == f"A document is ready in your {clinic.name} portal"
    body = " ".join(text_of(msg).split())
    assert f"A new receipt from {clinic.name} is ready for you in your patient portal" in body
    assert "http://localhost/portal/" in body
    assert_no_phi(msg["Subject"] + body, phi_of(db, patient) + ["$", "F3", "cash"])
    assert [m.kind for m in messages_of(mail_app, patient_id=pid)] == [MailKind.document]

    # a patient without a portal account has no receipt to open there: nothing is sent
    tid, other = complete_session(mail_app, "ST1001")
    pay(mail_app, client, _invoice_from_draft(mail_app, client, tid), method="card")
    assert len(settle(smtp_server, 1)) == 1 and messages_of(mail_app, patient_id=other) == []


# -- 2. questionnaire due, on the clinic's schedule ------------------------------------------------

def test_glia_mail_reminders_asks_portal_patients_for_the_questionnaire_once_per_session(mail_app, smtp_server, db):
    clinic, patient = clinic_of(db), portal_patient(db)
    nxt, _later = course(mail_app, db, 2, 9)  # due from 3 days ahead: the session in 2 days asks now
    outsider = patient_without_portal(db)  # e-mail but no portal account: nowhere to answer
    add_session(mail_app, outsider, local_at(clinic, 2, hour=13))
    out = run_cli(mail_app, "reminders", "--clinic", "stillwater")
    assert "1 questionnaires due" in out, out
    asked = [m for m in settle(smtp_server, 1) if m["Subject"] == QUESTIONNAIRE.format(clinic.name)]
    assert [m["To"] for m in asked] == [patient.email]
    body = " ".join(text_of(asked[0]).split())
    db.rollback()
    at = db.get(TreatmentSession, nxt).scheduled_at.astimezone(ZoneInfo(clinic.timezone))
    assert f"on {at:%A, %B} {at.day}, {at.year} at 10:00 AM" in body and "http://127.0.0.1:5000/portal/" in body
    assert_no_phi(asked[0]["Subject"] + body, phi_of(db, patient) + ["PHQ", "GAD", "depress"])
    [row] = messages_of(mail_app, kind=MailKind.questionnaire)
    assert row.dedupe_key == f"questionnaire:{nxt}" and row.patient_id == patient.id

    before = len(smtp_server.messages)
    assert "0 questionnaires due" in run_cli(mail_app, "reminders", "--clinic", "stillwater")
    assert len(settle(smtp_server, before)) == before

    # a portal login that was switched off is asked nothing, even for a new session that asks
    course(mail_app, db, 1)
    with session_scope(mail_app.extensions["glia"].engine) as w:
        w.get(User, patient.user_id).active = False
    assert "0 questionnaires due" in run_cli(mail_app, "reminders", "--clinic", "stillwater")


def test_a_session_not_yet_in_the_window_or_already_answered_asks_nothing(mail_app, smtp_server, db):
    course(mail_app, db, 6)  # the default rule opens 3 days ahead
    assert "0 questionnaires due" in run_cli(mail_app, "reminders", "--clinic", "stillwater")
    (nxt,) = course(mail_app, db, 1)
    patient = portal_patient(db)
    clinician = mail_app.test_client()
    login(mail_app, clinician, "clinician")
    for instrument, items in (("PHQ-9", PHQ9_MODERATE), ("GAD-7", GAD7_SEVERE)):
        assert post(mail_app, clinician, f"/patients/{patient.id}/scores",
                    {"instrument": instrument, **answers(items)}).status_code == 302
    assert "0 questionnaires due" in run_cli(mail_app, "reminders", "--clinic", "stillwater")
    assert messages_of(mail_app, kind=MailKind.questionnaire) == []
    db.rollback()
    assert db.exec(select(OutcomeScore.treatment_id).where(OutcomeScore.patient_id == patient.id)
                   .order_by(OutcomeScore.id.desc()).limit(2)).all() == [nxt, nxt]


# -- 3. moved and cancelled sessions -------------------------------------------------------------

def _event(msg):
    cal = ics_of(msg)
    [event] = cal.walk("VEVENT")
    return cal, event


def test_a_moved_session_is_confirmed_again_and_a_cancelled_one_leaves_the_calendar(mail_app, smtp_server, db):
    from tests.test_planning import _book_series, _chair, _provider, quiet_monday

    client = mail_app.test_client()
    login(mail_app, client, "frontdesk")
    clinic = clinic_of(db)
    zone = ZoneInfo(clinic.timezone)
    patient = patient_without_portal(db)
    monday = quiet_monday()
    booked = _book_series(mail_app, client, db, patient, _provider(db, clinic), _chair(db, clinic, "Birch room"),
                          monday, at="10:00")
    assert booked.status_code == 302, booked.text[:1500]
    [first] = settle(smtp_server, 1)
    db.rollback()
    t = db.exec(select(TreatmentSession).where(TreatmentSession.patient_id == patient.id)
                .order_by(TreatmentSession.scheduled_at.desc())).first()
    uid = f"session-{t.id}@{clinic.slug}.glia"
    [booked_event] = [e for e in ics_of(first).walk("VEVENT") if str(e["uid"]) == uid]
    assert int(booked_event["sequence"]) == 0

    new_day = t.scheduled_at.astimezone(zone).date()  # later the same day
    chair = db.get(Booking, t.id).chair_id
    moved = post(mail_app, client, f"/schedule/sessions/{t.id}/move",
                 {"day": new_day.isoformat(), "at": "13:30", "provider_id": str(t.provider_id), "chair_id": str(chair)})
    assert moved.status_code == 302, moved.text[:1500]
    update = settle(smtp_server, 2)[1]
    assert update["To"] == patient.email and update["Subject"] == f"Your appointment at {clinic.name} has changed"
    body = " ".join(text_of(update).split())
    assert f"It is now on {new_day:%A, %B} {new_day.day}, {new_day.year} at 1:30 PM" in body
    assert "Bring a companion who will take you home" in body and "http://localhost/portal/" in body
    cal, event = _event(update)
    assert str(cal["method"]) == "PUBLISH" and str(event["uid"]) == uid and str(event["status"]) == "CONFIRMED"
    assert int(event["sequence"]) > int(booked_event["sequence"])
    start = event.decoded("dtstart")
    assert start.astimezone(zone).date() == new_day and start.astimezone(zone).strftime("%H:%M") == "13:30"
    assert event.decoded("dtend") - start == timedelta(minutes=90)

    db.rollback()
    version = db.get(TreatmentSession, t.id).version
    cancelled = post(mail_app, client, f"/sessions/{t.id}/cancel", {"version": version, "confirm": "yes"})
    assert cancelled.status_code == 302, cancelled.text[:1500]
    notice = settle(smtp_server, 3)[2]
    assert notice["Subject"] == f"Your appointment at {clinic.name} is cancelled"
    body = " ".join(text_of(notice).split())
    assert f"on {new_day:%A, %B} {new_day.day}, {new_day.year} at 1:30 PM" in body and "is cancelled" in body
    cal, gone = _event(notice)
    assert str(cal["method"]) == "CANCEL" and str(gone["status"]) == "CANCELLED" and str(gone["uid"]) == uid
    assert int(gone["sequence"]) > int(event["sequence"]) and gone.decoded("dtstart") == start
    assert str(gone["attendee"]) == f"mailto:{patient.email}"
    for msg in smtp_server.messages:
        assert_no_phi(msg["Subject"], phi_of(db, patient))
    kinds = [m.kind for m in messages_of(mail_app, patient_id=patient.id)]
    assert kinds == [MailKind.confirmation, MailKind.confirmation, MailKind.cancellation]


# -- 4. a questionnaire entered on the chart ---------------------------------------------------

def test_a_chart_entered_phq9_answers_the_next_sessions_questionnaire_in_the_portal(app, db):
    first, _later = course(app, db, 1, 8)
    patient = portal_patient(db)
    portal, clinician = app.test_client(), app.test_client()
    login(app, portal, "patient")
    login(app, clinician, "clinician")
    assert "Answer the PHQ-9" in portal.get("/portal/").text
    assert post(app, clinician, f"/patients/{patient.id}/scores",
                {"instrument": "PHQ-9", **answers(PHQ9_MODERATE)}).status_code == 302
    db.rollback()
    score = db.exec(select(OutcomeScore).where(OutcomeScore.patient_id == patient.id)
                    .order_by(OutcomeScore.id.desc())).first()
    assert (score.total, score.treatment_id) == (13, first)
    home = portal.get("/portal/").text
    assert "Answer the PHQ-9" not in home and "Answer the GAD-7" in home
    assert "is not due now" in portal.get("/portal/questionnaires/phq9").text

    # nothing due (the next session is a week away): the score stands on its own, linked to no session
    course(app, db, 8)
    assert post(app, clinician, f"/patients/{patient.id}/scores",
                {"instrument": "GAD-7", **answers(GAD7_SEVERE)}).status_code == 302
    db.rollback()
    assert db.exec(select(OutcomeScore.treatment_id).where(OutcomeScore.patient_id == patient.id)
                   .order_by(OutcomeScore.id.desc())).first() is None
