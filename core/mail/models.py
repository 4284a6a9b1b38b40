"""Mail tables: every outgoing message (the log and the outbox) and portal invitations.

A message row is written in the transaction of what caused it (a booking, an invitation), so a
rolled-back request sends nothing. Its ``last_error`` is our own short words for what went wrong,
never the server's reply, which may quote the message back.
"""
from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.models import enum_type, ts


class MailStatus(str, enum.Enum):
    queued = "queued"  # waiting for its first or next attempt
    sent = "sent"      # the SMTP server accepted it
    failed = "failed"  # every attempt failed
    outbox = "outbox"  # no SMTP configured: kept for staff to read


class MailKind(str, enum.Enum):
    invitation = "invitation"
    confirmation = "confirmation"
    reminder = "reminder"
    questionnaire = "questionnaire"
    document = "document"
    cancellation = "cancellation"

    @property
    def label(self) -> str:
        return {"invitation": "Portal invitation", "confirmation": "Appointment confirmation",
                "reminder": "Appointment reminder", "questionnaire": "Questionnaire due",
                "document": "Document ready", "cancellation": "Appointment cancelled"}[self.value]


class MailMessage(SQLModel, table=True):
    __tablename__ = "mail_message"
    __table_args__ = (sa.Index("ix_mail_message_clinic_created", "clinic_id", "created_at"),
                      sa.Index("ix_mail_message_status_next", "status", "next_attempt_at"))
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id")
    patient_id: int | None = Field(default=None, foreign_key="patient.id", index=True)
    to_address: str = Field(max_length=254)
    kind: MailKind = Field(sa_type=enum_type(MailKind, 20))
    subject: str = Field(max_length=200)
    body: str = Field(sa_type=sa.Text)
    attachment_name: str = Field(default="", max_length=120)
    attachment_type: str = Field(default="", max_length=80)
    attachment: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    status: MailStatus = Field(default=MailStatus.queued, sa_type=enum_type(MailStatus, 12))
    attempts: int = 0
    last_error: str = Field(default="", max_length=200)
    next_attempt_at: datetime | None = ts()
    # what this message is about, once: "reminder:<session id>:<day>" makes a second reminder impossible
    dedupe_key: str | None = Field(default=None, max_length=80, unique=True)
    created_at: datetime = ts(nullable=False)
    sent_at: datetime | None = ts()


class PortalInvitation(SQLModel, table=True):
    """A single-use link to set a portal password; only the SHA-256 of its token is kept."""

    __tablename__ = "portal_invitation"
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_by_id: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = ts(nullable=False)
    expires_at: datetime = ts(nullable=False)
    used_at: datetime | None = ts()
