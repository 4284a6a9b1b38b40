"""Portal invitations: a single-use link, valid for 72 hours, that lets a patient set a password.

Only the SHA-256 of the token is stored, so the table alone opens no account. A new invitation ends
the patient's earlier ones; accepting creates (or re-activates) the patient's portal user, linked by
Patient.user_id, under the patient's e-mail address.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, select

from core import audit
from core.auth import hash_password
from core.mail import InvitationProblem, compose
from core.mail.models import MailMessage, PortalInvitation
from core.models import Clinic, Patient, Role, User, utcnow

VALID_FOR = timedelta(hours=72)


class InvitationGone(Exception):
    """The link opens nothing: 404 if it never existed, 410 if it was used, replaced or has expired."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def email_taken(db: Session, patient: Patient) -> bool:
    """Another account (staff, or another patient) already signs in with this patient's address."""
    other = db.exec(select(User.id).where(User.email == patient.email.strip().lower())).first()
    return other is not None and other != patient.user_id


def invite(db: Session, clinic: Clinic, patient: Patient, by_user_id: int | None) -> MailMessage:
    """Send a fresh invitation (earlier unused ones stop working)."""
    if not patient.email:
        raise InvitationProblem("Add the patient's e-mail address first: the invitation is sent there.")
    if patient.user_id is None and email_taken(db, patient):
        raise InvitationProblem("Another account already signs in with this e-mail address; "
                                "change the patient's e-mail address first.")
    now = utcnow()
    db.exec(update(PortalInvitation).where(PortalInvitation.clinic_id == clinic.id,
                                           PortalInvitation.patient_id == patient.id,
                                           PortalInvitation.used_at.is_(None), PortalInvitation.expires_at > now)
            .values(expires_at=now))
    token = secrets.token_urlsafe(32)
    invitation = PortalInvitation(clinic_id=clinic.id, patient_id=patient.id, token_hash=token_hash(token),
                                  created_by_id=by_user_id, created_at=now, expires_at=now + VALID_FOR)
    db.add(invitation)
    db.flush()
    audit.append(db, "portal.invitation_sent", object_type="portal_invitation", object_id=invitation.id,
                 patient_id=patient.id, clinic_id=clinic.id)
    return compose.invitation(db, clinic, patient, token, invitation.expires_at)


def find(db: Session, token: str) -> PortalInvitation:
    """The invitation this token opens, or InvitationGone."""
    invitation = db.exec(select(PortalInvitation).where(PortalInvitation.token_hash == token_hash(token))).first()
    if invitation is None:
        raise InvitationGone(404)
    if invitation.used_at is not None or invitation.expires_at <= utcnow():
        raise InvitationGone(410)
    return invitation


def accept(db: Session, invitation: PortalInvitation, password: str) -> User:
    """Use the invitation: the patient's portal user gets this (already checked) password."""
    claimed = db.exec(update(PortalInvitation).where(PortalInvitation.id == invitation.id,
                                                     PortalInvitation.used_at.is_(None))
                      .values(used_at=utcnow())).rowcount
    if claimed != 1:  # accepted a moment ago in another request: single use means once
        raise InvitationGone(410)
    db.refresh(invitation)
    patient = db.get(Patient, invitation.patient_id)
    user = db.get(User, patient.user_id) if patient.user_id else None
    if user is None:
        if email_taken(db, patient):
            raise InvitationProblem("Another account already uses your e-mail address. "
                                    "Please call the clinic so they can sort it out.")
        user = User(email=patient.email.strip().lower(), name=patient.display_name, role=Role.patient,
                    password_hash="", created_at=utcnow())
    user.password_hash = hash_password(password)
    user.active = True
    user.failed_logins, user.locked_until = 0, None
    db.add(user)
    db.flush()
    patient.user_id = user.id
    db.add(patient)
    db.flush()
    audit.append(db, "portal.invitation_accepted", object_type="portal_invitation", object_id=invitation.id,
                 patient_id=patient.id, clinic_id=invitation.clinic_id, user_id=user.id)
    return user
