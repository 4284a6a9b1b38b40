"""Without GLIA_SMTP_URL messages are kept in the outbox: staff of the clinic read them, nobody else."""
from __future__ import annotations

import re

from icalendar import Calendar
from sqlmodel import select

from core.mail.models import MailKind, MailStatus
from core.models import AuditEvent
from tests.support import login, post
from tests.test_mail import clinic_of, messages_of, patient_without_portal


def _invite(app, db):
    client = app.test_client()
    login(app, client, "frontdesk")
    patient = patient_without_portal(db)
    resp = post(app, client, f"/patients/{patient.id}/invite")
    assert resp.status_code == 302
    assert "Portal invitation kept in the outbox." in client.get(resp.headers["Location"]).text
    [row] = messages_of(app, patient_id=patient.id)
    return client, patient, row


def test_without_smtp_the_message_waits_in_the_outbox_for_staff_to_read(app, db):
    client, patient, row = _invite(app, db)
    assert row.status == MailStatus.outbox and row.attempts == 0 and row.kind == MailKind.invitation
    listing = client.get("/mail/outbox")
    assert listing.status_code == 200
    assert "No mail server is set up" in listing.text and "In outbox" in listing.text
    assert patient.email in listing.text and f"/mail/outbox/{row.id}" in listing.text
    assert 'href="/mail/outbox"' in client.get("/").text  # in the desk's menu
    manager = app.test_client()
    login(app, manager, "manager")
    assert 'href="/mail/outbox"' not in manager.get("/").text  # a full top menu: under Settings instead
    assert 'href="/mail/outbox"' in manager.get("/settings/clinic").text
    assert patient.email in manager.get("/mail/outbox").text
    page = client.get(f"/mail/outbox/{row.id}")
    assert page.status_code == 200 and "<title>Portal invitation" in page.text  # its kind, in the title and facts
    clinic = clinic_of(db)
    assert f"Your patient portal at {clinic.name}" in page.text
    link = re.search(r'href="(http://localhost/portal/invite/[^"]+)"', page.text)
    assert link, "the invitation link is clickable on the message page"
    assert client.get(link.group(1).removeprefix("http://localhost")).status_code == 200
    db.rollback()  # a fresh snapshot: the page's audit rows were committed as it answered
    reads = db.exec(select(AuditEvent.action).where(AuditEvent.object_type == "mail_message",
                                                    AuditEvent.object_id == str(row.id))).all()
    assert "mail.outbox" in reads and "mail.message_view" in reads


def test_another_clinic_the_patient_and_a_clinician_cannot_read_the_outbox(app, db):
    _client, patient, row = _invite(app, db)
    harbor = app.test_client()
    login(app, harbor, "harbor.manager")
    assert harbor.get(f"/mail/outbox/{row.id}").status_code == 404
    assert harbor.get(f"/mail/outbox/{row.id}/attachment").status_code == 404
    listing = harbor.get("/mail/outbox")
    assert listing.status_code == 200 and patient.email not in listing.text and "No messages yet." in listing.text
    portal = app.test_client()
    login(app, portal, "patient")
    assert portal.get("/mail/outbox").status_code == 403
    assert portal.get(f"/mail/outbox/{row.id}").status_code == 403
    clinician = app.test_client()
    login(app, clinician, "clinician")
    assert clinician.get("/mail/outbox").status_code == 403
    assert app.test_client().get("/mail/outbox").status_code == 302  # signed out: to the login page


def test_a_confirmations_calendar_file_downloads_from_the_outbox(app, db):
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from core.models import Provider

    client = app.test_client()
    login(app, client, "manager")
    clinic = clinic_of(db)
    patient = patient_without_portal(db)
    provider = db.exec(select(Provider).where(Provider.clinic_id == clinic.id, Provider.active)).first()
    day = (datetime.now(ZoneInfo(clinic.timezone)) + timedelta(days=33)).date()
    resp = post(app, client, f"/patients/{patient.id}/sessions",
                {"date": day.isoformat(), "time": "13:30", "modality": "esketamine_nasal",
                 "provider_id": str(provider.id)})
    assert resp.status_code == 302, resp.text[:1000]
    [row] = messages_of(app, patient_id=patient.id, kind=MailKind.confirmation)
    page = client.get(f"/mail/outbox/{row.id}")
    assert "appointment.ics" in page.text
    got = client.get(f"/mail/outbox/{row.id}/attachment")
    assert got.status_code == 200 and got.headers["Content-Type"].startswith("text/calendar")
    assert got.headers["Content-Disposition"] == 'attachment; filename="appointment.ics"'
    [event] = Calendar.from_ical(got.data).walk("VEVENT")
    assert event.decoded("dtend") - event.decoded("dtstart") == timedelta(minutes=150)  # Spravato's booking
