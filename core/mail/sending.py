"""Queueing and sending: a message is a row first, then one attempt at a time until sent or failed.

An attempt claims the row by bumping its attempt count where the count is still what it read, so two
senders (a worker's retry and `glia mail send`) never deliver the same message twice. A failed attempt
waits its backoff (GLIA_MAIL_RETRY_INTERVALS) and stays queued; after the last one it is failed, shown
as such on the outbox page, and audited. Without GLIA_SMTP_URL a message is kept in the outbox.
"""
from __future__ import annotations

import logging
import re
from datetime import timedelta

from flask import Flask, current_app, g, has_request_context
from sqlalchemy import or_, update
from sqlmodel import Session, select

from core import audit, queue
from core.db import session_scope
from core.mail import settings
from core.mail.models import MailKind, MailMessage, MailStatus
from core.mail.transport import DeliveryError, build, deliver
from core.models import Clinic, utcnow

log = logging.getLogger("glia.mail")
LEASE = timedelta(minutes=2)  # a sender that died mid-attempt leaves the row due again after this
INVITE_LINK = re.compile(r"\S*/portal/invite/[A-Za-z0-9_\-]+")


def queue_message(db: Session, clinic: Clinic, to: str, kind: MailKind, subject: str, body: str, *,
                  patient_id: int | None = None, attachment: tuple[str, str, bytes] | None = None,
                  dedupe_key: str | None = None) -> MailMessage:
    """Write the message in the caller's transaction; in a web request it is sent once that commits."""
    name, mime, data = attachment or ("", "", None)
    message = MailMessage(clinic_id=clinic.id, patient_id=patient_id, to_address=to, kind=kind, subject=subject,
                          body=body, attachment_name=name, attachment_type=mime, attachment=data,
                          status=MailStatus.queued if settings.smtp() else MailStatus.outbox,
                          dedupe_key=dedupe_key, created_at=utcnow())
    db.add(message)
    db.flush()
    audit.append(db, "mail.queued" if message.status == MailStatus.queued else "mail.outbox",
                 object_type="mail_message", object_id=message.id, patient_id=patient_id, clinic_id=clinic.id,
                 detail=kind.value)
    if message.status == MailStatus.queued and has_request_context() and "db_reads_only" in g:
        from core.web import post_commit  # a real request (not a command's borrowed context)

        app, mid = current_app._get_current_object(), message.id
        post_commit(lambda: dispatch(app, [mid]))
    return message


def dispatch(app: Flask, ids: list[int]) -> None:
    """Send these now: as RQ jobs when the queue is configured, else in this process."""
    if queue.configured(app):
        try:
            enqueue(app, ids)
            return
        except Exception as exc:  # noqa: BLE001 - they stay queued for `glia mail send`
            log.error("mail: the queue is unreachable (%s); %d messages wait for `glia mail send`",
                      type(exc).__name__, len(ids))
            return
    for mid in ids:
        attempt(app, mid)


def enqueue(app: Flask, ids: list[int]) -> None:
    from rq import Retry

    q = queue.queue(app)
    intervals = settings.retry_intervals(app)
    for mid in ids:
        kwargs = dict(result_ttl=queue.KEEP, failure_ttl=queue.KEEP, description=f"mail message {mid}",
                      retry=Retry(max=len(intervals), interval=intervals) if intervals else None)
        q.enqueue("core.mail.jobs.send", mid, **kwargs)


def attempt(app: Flask, message_id: int) -> MailStatus | None:
    """One attempt at one message; returns its status after, or None if it was not ours to send."""
    engine = app.extensions["glia"].engine
    server = settings.smtp(app)
    with session_scope(engine) as db:
        message = db.get(MailMessage, message_id)
        if message is None or message.status != MailStatus.queued or server is None:
            return None
        seen = message.attempts
        claimed = db.exec(update(MailMessage).where(MailMessage.id == message_id, MailMessage.attempts == seen,
                                                    MailMessage.status == MailStatus.queued)
                          .values(attempts=seen + 1, next_attempt_at=utcnow() + LEASE)).rowcount
        if claimed != 1:
            return None
        clinic = db.get(Clinic, message.clinic_id)
        email = build(message, settings.sender(clinic.name, app))
    try:
        deliver(server, email)
        problem = None
    except DeliveryError as exc:
        problem = str(exc)
    return _record(app, message_id, seen + 1, problem)


def _record(app: Flask, message_id: int, attempts: int, problem: str | None) -> MailStatus:
    intervals = settings.retry_intervals(app)
    with session_scope(app.extensions["glia"].engine) as db:
        message = db.get(MailMessage, message_id)
        now = utcnow()
        if problem is None:
            message.status, message.sent_at, message.last_error = MailStatus.sent, now, ""
            message.next_attempt_at = None
            # the link was for the patient alone: once it has left, no copy stays readable here
            message.body = INVITE_LINK.sub("(the link was sent and is not kept)", message.body)
            action = "mail.sent"
        elif attempts > len(intervals):
            message.status, message.last_error, message.next_attempt_at = MailStatus.failed, problem[:200], None
            action = "mail.failed"
        else:
            message.last_error = problem[:200]
            message.next_attempt_at = now + timedelta(seconds=intervals[attempts - 1])
            action = "mail.attempt_failed"
        db.add(message)
        audit.append(db, action, object_type="mail_message", object_id=message.id, patient_id=message.patient_id,
                     clinic_id=message.clinic_id, outcome="ok" if problem is None else "error",
                     detail=f"{message.kind.value}, attempt {attempts}" + (f": {problem}" if problem else ""),
                     actor={"user_id": None, "role": "system", "ip": "", "clinic_id": message.clinic_id})
        if problem is not None:
            log.warning("mail message %s: attempt %s failed: %s", message_id, attempts, problem)
        return message.status


def due(app: Flask, *, now_too: bool = False) -> list[int]:
    """Queued messages whose next attempt is due (all queued ones with ``now_too``)."""
    with session_scope(app.extensions["glia"].engine, write=False) as db:
        where = [MailMessage.status == MailStatus.queued]
        if not now_too:
            where.append(or_(MailMessage.next_attempt_at.is_(None), MailMessage.next_attempt_at <= utcnow()))
        return list(db.exec(select(MailMessage.id).where(*where).order_by(MailMessage.id)).all())


def flush(app: Flask, *, now_too: bool = False) -> dict[str, int]:
    """Attempt every due message in this process (`glia mail send`); counts by resulting status."""
    counts: dict[str, int] = {}
    for mid in due(app, now_too=now_too):
        status = attempt(app, mid)
        if status is not None:
            counts[status.value] = counts.get(status.value, 0) + 1
    return counts
