"""A failure is retried, not lost: a refused connection leaves the message queued with its attempt
counted; once the server answers it is delivered exactly once; after the last attempt it is failed.
With Redis, sending runs as an RQ job that a real `glia worker` picks up."""
from __future__ import annotations

import re
import signal
import time

import pytest

from core.mail.models import MailStatus
from tests.redis_support import glia_worker, redis_database, stop
from tests.support import login, post
from tests.test_mail import SmtpServer, messages_of, patient_without_portal, run_cli


@pytest.fixture
def redis_url():
    yield from redis_database()


@pytest.fixture
def server():
    s = SmtpServer()  # its port is ours, but nothing listens until start()
    yield s
    s.stop()


def _invite(app, db):
    client = app.test_client()
    login(app, client, "frontdesk")
    patient = patient_without_portal(db)
    resp = post(app, client, f"/patients/{patient.id}/invite")
    assert resp.status_code == 302  # the booking stands whatever the mail server does
    return client, patient


def test_a_refused_connection_stays_queued_then_is_delivered_once(make_app, server, db):
    app = make_app(GLIA_SMTP_URL=server.url, GLIA_MAIL_RETRY_INTERVALS="0,0,0")
    client, patient = _invite(app, db)
    [row] = messages_of(app, patient_id=patient.id)
    assert (row.status, row.attempts) == (MailStatus.queued, 1)
    assert row.last_error == "the mail server refused the connection"
    page = client.get("/mail/outbox").text
    assert "Queued" in page and "the mail server refused the connection" in page
    token = re.search(r"/portal/invite/([A-Za-z0-9_\-]+)", row.body).group(1)
    shown = client.get(f"/mail/outbox/{row.id}").text  # with a mail server the link is the patient's alone
    assert "(the patient&#39;s link, not shown here)" in shown, shown[-3000:]
    assert token not in shown, shown[shown.index(token) - 300:shown.index(token) + 100]

    server.start()
    assert "sent 1, waiting to retry 0, failed 0" in run_cli(app, "send")
    assert len(server.wait_for(1)) == 1 and server.messages[0]["To"] == patient.email
    [row] = messages_of(app, patient_id=patient.id)
    assert (row.status, row.attempts, row.last_error) == (MailStatus.sent, 2, "")
    assert "sent 0, waiting to retry 0, failed 0" in run_cli(app, "send", "--now")
    time.sleep(0.5)
    assert len(server.messages) == 1


def test_backoff_holds_a_retry_back_and_the_last_attempt_fails_the_message(make_app, server, db):
    app = make_app(GLIA_SMTP_URL=server.url, GLIA_MAIL_RETRY_INTERVALS="3600")
    client, patient = _invite(app, db)
    assert "sent 0, waiting to retry 0, failed 0" in run_cli(app, "send")  # not due for an hour
    assert messages_of(app, patient_id=patient.id)[0].attempts == 1
    assert "sent 0, waiting to retry 0, failed 1" in run_cli(app, "send", "--now")
    [row] = messages_of(app, patient_id=patient.id)
    assert (row.status, row.attempts) == (MailStatus.failed, 2)
    page = client.get(f"/mail/outbox/{row.id}").text
    assert "Failed" in page and "2 attempts" in page and "refused the connection" in page


def test_a_server_answering_5xx_is_an_error_in_our_words(make_app, server, db):
    class Refusing:
        async def handle_RCPT(self, server_, session, envelope, address, rcpt_options):
            return f"550 5.1.1 <{address}> no such mailbox here"

    server.inbox = Refusing()
    server.start()
    app = make_app(GLIA_SMTP_URL=server.url, GLIA_MAIL_RETRY_INTERVALS="0")
    _client, patient = _invite(app, db)
    [row] = messages_of(app, patient_id=patient.id)
    assert row.status == MailStatus.queued and row.last_error == "the mail server refused the recipient (550)"
    assert patient.email not in row.last_error  # never the server's text, which quotes the address


def test_with_redis_a_real_glia_worker_sends_the_message(make_app, db, db_url, redis_url, tmp_path, monkeypatch):
    server = SmtpServer()
    server.start()
    try:
        app = make_app(GLIA_SMTP_URL=server.url, GLIA_REDIS_URL=redis_url, GLIA_MAIL_RETRY_INTERVALS="1,1")
        _client, patient = _invite(app, db)
        [row] = messages_of(app, patient_id=patient.id)
        assert (row.status, row.attempts) == (MailStatus.queued, 0)  # on the queue, not sent by the request
        time.sleep(0.3)
        assert server.messages == []
        monkeypatch.setenv("GLIA_SMTP_URL", server.url)
        worker = glia_worker(db_url, redis_url, tmp_path, "--burst")
        try:
            assert worker.wait(timeout=300) == 0
        finally:
            stop(worker, signal.SIGKILL)
        assert len(server.wait_for(1)) == 1 and server.messages[0]["To"] == patient.email
        [row] = messages_of(app, patient_id=patient.id)
        assert (row.status, row.attempts) == (MailStatus.sent, 1)
    finally:
        server.stop()
