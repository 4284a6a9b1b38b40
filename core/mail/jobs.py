"""The RQ job that sends one message (`glia worker` runs it in the app's context).

A failed attempt raises, so RQ retries it after the same backoff our table records; the job carries
the message id only, never an address or text.
"""
from __future__ import annotations

from flask import current_app

from core.mail.models import MailStatus
from core.mail.sending import attempt
from core.queue import JobFailed


def send(message_id: int) -> str:
    status = attempt(current_app._get_current_object(), message_id)
    if status == MailStatus.queued:
        raise JobFailed(f"mail message {message_id} not delivered yet; retrying")
    return status.value if status else "skipped"
