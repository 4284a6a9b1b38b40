"""E-mail to patients: invitations, confirmations with .ics, reminders, questionnaires, documents.

Every message is a row of ``mail_message`` (the log, and without SMTP the outbox staff read) written
in the transaction that caused it; it is sent through GLIA_SMTP_URL once that commits: by an RQ job
when GLIA_REDIS_URL is set, else right after the request, and in any case by `glia mail send`.
Modules: models (tables), settings (GLIA_SMTP_URL...), compose (each kind's text), ics, transport
(smtplib), sending (queue, attempts, retries), invitations, reminders, views, hooks, cli, jobs.
"""
from __future__ import annotations

from flask import Flask


def send_questionnaire_due(patient, session):
    """Tell the patient a questionnaire waits in the portal before ``session`` (once per session).

    Runs in the caller's database session (the request's, or the one ``core.db.bound`` lends)."""
    from core.db import get_session
    from core.mail.reminders import questionnaire_due

    return questionnaire_due(get_session(), patient, session)


class InvitationProblem(Exception):
    """Why no invitation could be sent or used, in words for the page (core.mail.invitations)."""


def invite_to_portal(db, clinic, patient, by_user_id):
    """E-mail a single-use, expiring link to set a portal password; InvitationProblem if impossible."""
    from core.mail.invitations import invite

    return invite(db, clinic, patient, by_user_id)


def send_confirmation(db, clinic, patient, sessions):
    """One confirmation (with .ics) for sessions just booked, if the patient has an e-mail address."""
    from core.mail.compose import confirmation

    return confirmation(db, clinic, patient, sessions)


def send_session_change(db, clinic, patient, session):
    """After a session moved or was cancelled: the updated confirmation, or the cancellation, each with
    an .ics that replaces the calendar's event. A session whose time has passed is not announced."""
    from core.mail import compose
    from core.models import SessionStatus, utcnow

    if not patient.email or session.patient_id != patient.id or session.scheduled_at <= utcnow():
        return None
    if session.status == SessionStatus.cancelled:
        return compose.cancellation(db, clinic, patient, session)
    return compose.moved(db, clinic, patient, session)


def send_document_ready(db, clinic, patient, what: str):
    """Tell the patient a document (a superbill, a receipt) waits in the portal."""
    from core.mail.compose import document_ready

    if not patient.email:
        return None
    return document_ready(db, clinic, patient, what)


def init_app(app: Flask) -> None:
    from core.mail import hooks, settings, views

    settings.check(app)
    app.register_blueprint(views.bp)
    app.extensions["glia"].pm.register(hooks, name="core.mail")
