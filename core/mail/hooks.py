"""Core's mail as a plugin of its own hooks: a superbill or receipt issued tells its patient; the desk's menu.

Core never imports a plugin, so the document is recognised by its table name; only documents the
patient can open in the portal are announced, and only to a patient who has a portal account.
"""
from __future__ import annotations

from flask import url_for

from core.hookspecs import hookimpl
from core.slots import NavItem

# a payment, refund or correction is a ledger row whose receipt the portal renders from it
IN_PORTAL = {"billing_superbill": "superbill", "billing_payment": "receipt"}


@hookimpl
def document_issued(clinic, document):
    from core.db import get_session
    from core.mail import send_document_ready
    from core.models import Patient

    what = IN_PORTAL.get(getattr(document, "__tablename__", ""))
    if what is None or not getattr(document, "patient_id", None):
        return
    db = get_session()
    patient = db.get(Patient, document.patient_id)
    if patient is not None and patient.clinic_id == clinic.id and patient.user_id is not None:
        send_document_ready(db, clinic, patient, what)


@hookimpl
def nav_items(clinic, user):
    """The desk's menu; administrators and managers, whose top menu is full, find it under Settings."""
    return [NavItem("Outbox", url_for("mail.outbox"), order=790, roles=("front_desk",))]
