"""Pages: the outbox (every message of this clinic, its status and attempts) and the invitation.

The outbox is the log of what was sent and, without SMTP, the place messages are kept for staff to
read (the demo's way of delivering them). It is scoped to the signed-in clinic: another clinic's
message id answers 404 like a missing one. Reading a message is audited as a read of patient data.
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, make_response, redirect, render_template, request, url_for
from sqlalchemy import func
from sqlmodel import select

from core import audit
from core.auth import clinic_row_or_404, end_other_sessions, password_problem, public, staff, start_session
from core.db import get_session
from core.form_fields import GliaForm
from core.mail import invitations, settings
from core.mail.models import MailMessage, MailStatus
from core.mail.sending import INVITE_LINK
from core.models import Patient
from core.validators import db_int
from wtforms import PasswordField

bp = Blueprint("mail", __name__)
READERS = ("admin", "manager", "front_desk")
PAGE_SIZE = 50


@bp.get("/mail/outbox")
@staff(*READERS)
def outbox():
    db = get_session()
    where = [MailMessage.clinic_id == g.clinic.id]
    total = db.exec(select(func.count()).select_from(MailMessage).where(*where)).one()
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, request.args.get("page", 1, type=db_int) or 1), pages)
    # the list leaves the bodies and attachments in the database: only the page of one message reads them
    rows = db.exec(select(MailMessage.id, MailMessage.created_at, MailMessage.to_address, MailMessage.kind,
                          MailMessage.subject, MailMessage.status, MailMessage.attempts, MailMessage.last_error,
                          MailMessage.sent_at, MailMessage.attachment_name).where(*where)
                   .order_by(MailMessage.created_at.desc(), MailMessage.id.desc())
                   .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
    audit.record("mail.outbox_view", object_type="mail_message", detail=f"page {page}, {len(rows)} shown")
    return render_template("mail/outbox.html", rows=rows, page=page, pages=pages, total=total,
                           smtp=settings.smtp() is not None)


def _message(message_id: int) -> MailMessage:
    return clinic_row_or_404(MailMessage, message_id, object_type="mail_message", action="mail.access")


@bp.get("/mail/outbox/<int:message_id>")
@staff(*READERS)
def message(message_id: int):
    m = _message(message_id)
    audit.record("mail.message_view", object_type="mail_message", object_id=m.id, patient_id=m.patient_id)
    # with a mail server the link is the patient's alone: staff see that it was sent, not the link
    body = m.body if m.status == MailStatus.outbox else INVITE_LINK.sub("(the patient's link, not shown here)", m.body)
    return render_template("mail/message.html", m=m, body=body, sender=settings.sender(g.clinic.name))


@bp.get("/mail/outbox/<int:message_id>/attachment")
@staff(*READERS)
def attachment(message_id: int):
    m = _message(message_id)
    if m.attachment is None:
        abort(404)
    audit.record("mail.attachment_download", object_type="mail_message", object_id=m.id, patient_id=m.patient_id)
    response = make_response(m.attachment)
    response.headers["Content-Type"] = m.attachment_type or "application/octet-stream"
    safe = "".join(c for c in m.attachment_name if c.isalnum() or c in "._-") or "attachment"
    response.headers["Content-Disposition"] = f'attachment; filename="{safe}"'
    return response


# -- accepting an invitation -----------------------------------------------------------------

class InvitationForm(GliaForm):
    password = PasswordField("New password")
    confirm = PasswordField("New password again")


def _unusable(status: int):
    title, message = ((410, "This invitation has been used or has expired"),
                      (404, "This invitation link is not valid"))[0 if status == 410 else 1]
    return render_template("mail/invite_gone.html", title=message, status=status), status


@bp.route("/portal/invite/<token>", methods=["GET", "POST"])
@public
def accept_invitation(token: str):
    db = get_session()
    try:
        invitation = invitations.find(db, token[:100])
    except invitations.InvitationGone as exc:
        return _unusable(exc.status)
    patient = db.get(Patient, invitation.patient_id)
    form = InvitationForm()
    if request.method == "GET":
        return render_template("mail/invite.html", form=form, error=None, errors={}, email=patient.email)
    password = (form.password.data or "")[:2048]
    errors = {}
    if problem := password_problem(password, email=patient.email, name=patient.display_name):
        errors["password"] = problem
    elif password != (form.confirm.data or ""):
        errors["confirm"] = "The two passwords differ."
    if errors:
        return render_template("mail/invite.html", form=form, error=None, errors=errors, email=patient.email), 422
    try:
        user = invitations.accept(db, invitation, password)
    except invitations.InvitationGone as exc:  # accepted a moment ago in another tab
        return _unusable(exc.status)
    except invitations.InvitationProblem as exc:
        return render_template("mail/invite.html", form=form, error=str(exc), errors={}, email=patient.email), 409
    end_other_sessions(user)
    start_session(user, invitation.clinic_id)
    audit.record("auth.login", object_type="user", object_id=user.id, detail="portal invitation")
    flash("Your password is set. Welcome to your portal.")
    return redirect(url_for("portal.home"))

