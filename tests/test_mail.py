"""E-mail through a real SMTP server on loopback (aiosmtpd): each kind's headers, body and .ics.

What arrived is read back as a mail client would: the From/To/Subject headers, the text body's
links, and the calendar attachment parsed with icalendar. Subjects must never carry the patient's
name, birth date, diagnosis or dose. Other mail tests import the server fixture from here.
"""
from __future__ import annotations

import email
import email.policy
import re
import socket
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from icalendar import Calendar
from sqlmodel import select

from core.db import bound, new_session
from core.mail.cli import mail_group
from core.mail.models import MailKind, MailMessage, MailStatus
from core.models import Clinic, Diagnosis, Patient, Provider, SessionStatus, TreatmentSession, utcnow
from core.scheduling.models import Booking
from core.scheduling.patterns import BOOKED_MINUTES
from tests.support import login, post


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """An aiosmtpd handler keeping every message it accepted, parsed."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted"


class SmtpServer:
    """A real SMTP server on a random loopback port; start() and stop() at will (the port stays ours)."""

    def __init__(self):
        self.port = free_port()
        self.inbox = Inbox()
        self.controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self):
        return self.inbox.messages

    def start(self):
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def wait_for(self, count: int, seconds: float = 60):
        deadline = time.monotonic() + seconds
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.messages


@pytest.fixture
def smtp_server():
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mail_app(make_app, smtp_server):
    return make_app(GLIA_SMTP_URL=smtp_server.url, GLIA_MAIL_RETRY_INTERVALS="0,0")


def clinic_of(db, slug="stillwater") -> Clinic:
    return db.exec(select(Clinic).where(Clinic.slug == slug)).one()


def patient_without_portal(db, slug="stillwater") -> Patient:
    clinic = clinic_of(db, slug)
    return db.exec(select(Patient).where(Patient.clinic_id == clinic.id, Patient.user_id.is_(None),
                                         Patient.email != "").order_by(Patient.id)).first()


def messages_of(app, **match) -> list[MailMessage]:
    with new_session(app.extensions["glia"].engine, write=False) as s:
        return s.exec(select(MailMessage).where(*[getattr(MailMessage, k) == v for k, v in match.items()])
                      .order_by(MailMessage.id)).all()


def phi_of(db, patient: Patient) -> list[str]:
    """What must never be in a subject: the names, the birth date (as written anywhere) and diagnoses."""
    codes = db.exec(select(Diagnosis.code).where(Diagnosis.patient_id == patient.id)).all()
    return [patient.legal_first_name, patient.legal_last_name, patient.mrn, patient.dob.isoformat(),
            patient.dob.strftime("%m/%d/%Y"), *codes, "ketamine infusion", " mg"]


def assert_no_phi(text: str, phi: list[str]):
    found = [v for v in phi if v and v.lower() in text.lower()]
    assert found == [], f"PHI in {text!r}: {found}"


def text_of(msg) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


def ics_of(msg) -> Calendar:
    parts = [p for p in msg.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1, [p.get_content_type() for p in msg.iter_attachments()]
    return Calendar.from_ical(parts[0].get_content() if isinstance(parts[0].get_content(), bytes)
                              else parts[0].get_content().encode())


def run_cli(app, *args):
    result = app.test_cli_runner().invoke(mail_group, list(args))
    assert result.exit_code == 0, result.output
    return result.output


# -- invitation --------------------------------------------------------------------------------

def test_an_invitation_arrives_from_the_clinic_with_a_single_use_link_and_no_phi(mail_app, smtp_server, db):
    client = mail_app.test_client()
    login(mail_app, client, "frontdesk")
    patient = patient_without_portal(db)
    resp = post(mail_app, client, f"/patients/{patient.id}/invite")
    assert resp.status_code == 302
    assert "Portal invitation sent." in client.get(resp.headers["Location"]).text
    [msg] = smtp_server.wait_for(1)
    clinic = clinic_of(db)
    assert msg["To"] == patient.email
    [sender] = msg["From"].addresses
    assert sender.display_name == clinic.name and sender.addr_spec == "no-reply@localhost"
    assert msg["Subject"] == f"Your patient portal at {clinic.name}"
    assert_no_phi(msg["Subject"], phi_of(db, patient))
    body = text_of(msg)
    assert clinic.name in body
    links = re.findall(r"http://localhost/portal/invite/[A-Za-z0-9_\-]{40,}", body)
    assert len(links) == 1
    assert_no_phi(body, [patient.legal_last_name, patient.dob.isoformat(), " mg"])
    # once it has left, the stored copy no longer opens the account
    [row] = messages_of(mail_app, patient_id=patient.id, kind=MailKind.invitation)
    assert row.status == MailStatus.sent and row.attempts == 1 and row.sent_at is not None
    assert links[0].rsplit("/", 1)[1] not in row.body and "(the link was sent and is not kept)" in row.body
    page = client.get(links[0].removeprefix("http://localhost"))
    assert page.status_code == 200 and "Set your portal password" in page.text


def test_a_patient_without_an_email_is_told_on_the_chart_and_nothing_is_sent(mail_app, smtp_server, db, client):
    from core.db import session_scope

    patient = patient_without_portal(db)
    with session_scope(mail_app.extensions["glia"].engine) as w:
        row = w.get(Patient, patient.id)
        row.email = ""
        w.add(row)
    login(mail_app, client, "frontdesk")
    resp = post(mail_app, client, f"/patients/{patient.id}/invite")
    assert resp.status_code == 422
    assert "Add the patient&#39;s e-mail address first" in resp.text
    assert messages_of(mail_app, patient_id=patient.id) == []
    assert smtp_server.messages == []


# -- confirmations -----------------------------------------------------------------------------

def _event_times(cal: Calendar) -> list[tuple[datetime, datetime, str, str]]:
    return [(e.decoded("dtstart"), e.decoded("dtend"), str(e.get("summary")), str(e.get("location")))
            for e in cal.walk("VEVENT")]


def test_the_charts_schedule_form_sends_a_confirmation_with_an_ics_in_utc(mail_app, smtp_server, db):
    client = mail_app.test_client()
    login(mail_app, client, "frontdesk")
    clinic = clinic_of(db)
    patient = patient_without_portal(db)
    provider = db.exec(select(Provider).where(Provider.clinic_id == clinic.id, Provider.active)).first()
    day = (datetime.now(ZoneInfo(clinic.timezone)) + timedelta(days=40)).date()
    resp = post(mail_app, client, f"/patients/{patient.id}/sessions",
                {"date": day.isoformat(), "time": "07:15", "modality": "iv_ketamine", "provider_id": str(provider.id)})
    assert resp.status_code == 302, resp.text[:1500]
    [msg] = smtp_server.wait_for(1)
    assert msg["To"] == patient.email and msg["Subject"] == f"Your appointment at {clinic.name}"
    assert_no_phi(msg["Subject"], phi_of(db, patient))
    body = " ".join(text_of(msg).split())
    assert f"{day:%A, %B} {day.day}, {day.year} at 7:15 AM" in body
    assert "Do not eat for 4 hours" in body and "may not drive" in body and "http://localhost/portal/" in body
    assert_no_phi(body, [patient.legal_last_name, " mg", "IV ketamine"])
    [(start, end, summary, location)] = _event_times(ics_of(msg))
    expected = datetime(day.year, day.month, day.day, 7, 15, tzinfo=ZoneInfo(clinic.timezone)).astimezone(timezone.utc)
    assert start == expected and start.utcoffset() == timedelta(0)
    assert end - start == timedelta(minutes=90)  # an IV booking's length
    assert summary == f"Appointment at {clinic.name}"
    assert_no_phi(summary + location, phi_of(db, patient))
    assert clinic.name in location and clinic.address_line1 in location and clinic.city in location


def test_booking_a_series_sends_one_confirmation_holding_every_session(mail_app, smtp_server, db):
    from tests.test_planning import _book_series, _chair, _provider, quiet_monday

    client = mail_app.test_client()
    login(mail_app, client, "frontdesk")
    clinic = clinic_of(db)
    patient = patient_without_portal(db)
    booked = _book_series(mail_app, client, db, patient, _provider(db, clinic), _chair(db, clinic, "Birch room"),
                          quiet_monday(), at="10:00")
    assert booked.status_code == 302, booked.text[:1500]
    [msg] = smtp_server.wait_for(1)
    assert msg["Subject"] == f"Your appointment at {clinic.name}"
    with new_session(mail_app.extensions["glia"].engine, write=False) as s:
        sessions = s.exec(select(TreatmentSession, Booking).join(Booking, Booking.treatment_id == TreatmentSession.id)
                          .where(TreatmentSession.patient_id == patient.id, Booking.plan_id.is_not(None))
                          .order_by(TreatmentSession.scheduled_at)).all()
    assert len(sessions) == 6
    events = sorted(_event_times(ics_of(msg)))
    assert [(s, e) for s, e, _, _ in events] == [(t.scheduled_at, t.scheduled_at + timedelta(minutes=b.minutes))
                                                 for t, b in sessions]
    assert text_of(msg).count("at 10:00 AM") == 6


# -- reminders and questionnaires ----------------------------------------------------------------

def _tomorrow_sessions(db, clinic) -> list[tuple[TreatmentSession, Patient]]:
    zone = ZoneInfo(clinic.timezone)
    day = datetime.now(zone).date() + timedelta(days=1)
    lo = datetime.combine(day, datetime.min.time(), zone)
    return db.exec(select(TreatmentSession, Patient).join(Patient, Patient.id == TreatmentSession.patient_id)
                   .where(TreatmentSession.clinic_id == clinic.id, TreatmentSession.status == SessionStatus.scheduled,
                          TreatmentSession.scheduled_at >= lo, TreatmentSession.scheduled_at < lo + timedelta(days=1),
                          Patient.email != "")).all()


def _book_tomorrow(app, db, clinic, patient):
    from core.db import session_scope

    zone = ZoneInfo(clinic.timezone)
    at = datetime.combine(datetime.now(zone).date() + timedelta(days=1), datetime.min.time(), zone) + timedelta(hours=9)
    provider = db.exec(select(Provider).where(Provider.clinic_id == clinic.id)).first()
    with session_scope(app.extensions["glia"].engine) as w:
        t = TreatmentSession(clinic_id=clinic.id, patient_id=patient.id, provider_id=provider.id,
                             modality="esketamine_nasal", scheduled_at=at.astimezone(timezone.utc))
        w.add(t)
        w.flush()
        return t.id


def test_reminders_go_out_the_day_before_once_each(mail_app, smtp_server, db):
    clinic = clinic_of(db)
    _book_tomorrow(mail_app, db, clinic, patient_without_portal(db))
    with new_session(mail_app.extensions["glia"].engine, write=False) as fresh:  # sees the session just booked
        due = _tomorrow_sessions(fresh, clinic)
    assert len(due) >= 1
    out = run_cli(mail_app, "reminders", "--clinic", "stillwater")
    assert f"stillwater: {len(due)} reminders" in out
    smtp_server.wait_for(len(due))
    subject = f"Reminder: your appointment tomorrow at {clinic.name}"
    reminders = [m for m in smtp_server.messages if m["Subject"] == subject]  # beside any questionnaire due
    assert sorted(m["To"] for m in reminders) == sorted(p.email for _t, p in due)
    stay = {150: "about 2.5 hours", 90: "about 1.5 hours", 75: "about 1 hour"}
    expected = {p.email: (t.scheduled_at.astimezone(ZoneInfo(clinic.timezone)).strftime("%I:%M %p").lstrip("0"),
                          stay[BOOKED_MINUTES[t.modality]]) for t, p in due}
    for msg in reminders:
        body = " ".join(text_of(msg).split())
        at, hours = expected[msg["To"]]
        assert f"tomorrow, {at}" in body and hours in body
        assert "Bring a companion who will take you home: you may not drive" in body
        assert "Do not eat for 4 hours" in body and "Bring a photo ID" in body
    for _t, p in due:
        assert_no_phi(" ".join(m["Subject"] for m in smtp_server.messages), phi_of(db, p))
    sent = len(smtp_server.messages)
    again = run_cli(mail_app, "reminders", "--clinic", "stillwater")
    assert "stillwater: 0 reminders, 0 questionnaires due" in again
    time.sleep(0.5)
    assert len(smtp_server.messages) == sent
    assert len(messages_of(mail_app, kind=MailKind.reminder)) == len(due)


def test_questionnaire_due_is_sent_once_per_session_by_glia_mail_send(mail_app, smtp_server, db):
    from core import mail
    from core.db import session_scope

    clinic = clinic_of(db)
    patient = patient_without_portal(db)
    tid = _book_tomorrow(mail_app, db, clinic, patient)
    with mail_app.app_context(), session_scope(mail_app.extensions["glia"].engine) as w, bound(w):
        t, p = w.get(TreatmentSession, tid), w.get(Patient, patient.id)
        assert mail.send_questionnaire_due(p, t) is not None
        assert mail.send_questionnaire_due(p, t) is None  # the same session asks once
    assert smtp_server.messages == []  # outside a request it waits for `glia mail send`
    assert "sent 1, waiting to retry 0, failed 0" in run_cli(mail_app, "send")
    [msg] = smtp_server.wait_for(1)
    assert msg["Subject"] == f"A questionnaire before your visit to {clinic.name}"
    assert "questionnaire" in text_of(msg) and "http://127.0.0.1:5000/portal/" in text_of(msg)
    assert "sent 0" in run_cli(mail_app, "send")
    assert len(smtp_server.messages) == 1


# -- documents ---------------------------------------------------------------------------------

def test_an_issued_superbill_tells_its_portal_patient_and_send_link_invites_one_without(mail_app, smtp_server, db):
    from tests.test_billing_documents import paid_superbill

    client = mail_app.test_client()
    login(mail_app, client, "manager")
    pid, _iid, _day, sid = paid_superbill(mail_app, client, db)  # ST1000 has the demo portal login
    receipt, msg = smtp_server.wait_for(2)  # the payment's receipt, then the superbill
    assert "A new receipt from" in text_of(receipt)
    clinic = clinic_of(db)
    patient = db.get(Patient, pid)
    assert msg["To"] == patient.email and msg["Subject"] == f"A document is ready in your {clinic.name} portal"
    assert "A new superbill from" in text_of(msg) and "http://localhost/portal/" in text_of(msg)
    assert_no_phi(msg["Subject"] + text_of(msg), [patient.legal_last_name, "F3", "$"])

    resp = post(mail_app, client, f"/billing/superbills/{sid}/send-link")
    assert resp.status_code == 302
    assert "Portal link recorded: a message that the superbill is in the portal was e-mailed to the patient." in client.get(resp.headers["Location"]).text
    assert len(smtp_server.wait_for(3)) == 3 and smtp_server.messages[2]["To"] == patient.email
    kinds = [m.kind for m in messages_of(mail_app, patient_id=pid)]
    assert kinds == [MailKind.document, MailKind.document, MailKind.document]


def test_send_link_for_a_patient_without_a_portal_account_sends_an_invitation(mail_app, smtp_server, db):
    from core.db import session_scope
    from tests.test_billing_documents import paid_superbill

    client = mail_app.test_client()
    login(mail_app, client, "manager")
    pid, _iid, _day, sid = paid_superbill(mail_app, client, db, mrn="ST1001")
    assert smtp_server.messages == [] or smtp_server.wait_for(0) == []  # no account: nothing on issue
    with session_scope(mail_app.extensions["glia"].engine, write=False) as s:
        assert s.get(Patient, pid).user_id is None
    resp = post(mail_app, client, f"/billing/superbills/{sid}/send-link")
    assert "Portal link recorded: a portal invitation was e-mailed to the patient." in client.get(resp.headers["Location"]).text
    [msg] = smtp_server.wait_for(1)
    assert msg["Subject"].startswith("Your patient portal at ") and "/portal/invite/" in text_of(msg)


def test_messages_are_audited_without_their_text(mail_app, smtp_server, db):
    from core.models import AuditEvent

    client = mail_app.test_client()
    login(mail_app, client, "frontdesk")
    patient = patient_without_portal(db)
    post(mail_app, client, f"/patients/{patient.id}/invite")
    smtp_server.wait_for(1)
    [row] = messages_of(mail_app, patient_id=patient.id)
    with new_session(mail_app.extensions["glia"].engine, write=False) as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.object_type == "mail_message",
                                                 AuditEvent.object_id == str(row.id)).order_by(AuditEvent.id)).all()
    assert [e.action for e in events] == ["mail.queued", "mail.sent"]
    assert all(e.patient_id == patient.id for e in events)
    assert all(patient.email not in e.detail and patient.legal_last_name not in e.detail for e in events)
    assert utcnow() - events[-1].at < timedelta(minutes=5)


def test_links_follow_glia_base_url_and_a_bad_smtp_url_stops_startup(make_app, smtp_server, db):
    from core.config import ConfigError

    app = make_app(GLIA_SMTP_URL=smtp_server.url, GLIA_BASE_URL="https://portal.stillwater.example/")
    client = app.test_client()
    login(app, client, "frontdesk")
    post(app, client, f"/patients/{patient_without_portal(db).id}/invite")
    [msg] = smtp_server.wait_for(1)
    assert re.search(r"https://portal\.stillwater\.example/portal/invite/[A-Za-z0-9_\-]{40,}", text_of(msg))
    for bad in ("http://mail.example:25", "smtp://", "smtp://mail.example:port"):
        with pytest.raises(ConfigError, match="GLIA_SMTP_URL"):
            make_app(GLIA_SMTP_URL=bad)
    with pytest.raises(ConfigError, match="GLIA_MAIL_RETRY_INTERVALS"):
        make_app(GLIA_MAIL_RETRY_INTERVALS="soon")
