"""What the billing pages share: roles, clinic-scoped lookups, PDF downloads, template helpers."""
from __future__ import annotations

import uuid

from flask import abort, current_app, g, url_for
from flask_login import current_user
from sqlmodel import select

from core import audit
from core.auth import clinic_row_or_404, current_patient
from core.db import get_session
from core.models import Patient, Provider
from core.pdf import pdf_response
from plugins.billing import ndc
from plugins.billing.documents import pdf_intact, us_date
from plugins.billing.money import METHODS, invoice_label
from plugins.billing.views import bp

MANAGERS = ("admin", "manager")
DESK = ("admin", "manager", "front_desk")


@bp.app_template_filter("invoice_label")
def _invoice_label(number: int) -> str:
    return invoice_label(number)


@bp.app_template_filter("iso_date")
def _iso_date(iso: str) -> str:
    """A date stored as ISO text in a document's data, written as the pages write dates."""
    return us_date(iso)


@bp.app_template_filter("ndc")
def _ndc(ndc11: str) -> str:
    return ndc.display(ndc11)


@bp.context_processor
def _helpers():
    def core_link(endpoint: str, **values):
        """A link into a core page when that page exists in this build, else None."""
        return url_for(endpoint, **values) if endpoint in current_app.view_functions else None

    return {"core_link": core_link, "methods": METHODS, "is_manager": is_manager}


def is_manager() -> bool:
    return current_user.is_authenticated and current_user.role.value in MANAGERS


def denied(object_type: str, object_id) -> None:
    audit.record_denied("billing.access_denied", object_type=object_type, object_id=object_id)
    abort(404)


def scoped(model, object_id: int, object_type: str, **extra):
    return clinic_row_or_404(model, object_id, object_type=object_type, action="billing.access_denied", **extra)


def patient_of(pid: int) -> Patient:
    return scoped(Patient, pid, "patient")


def own(model, object_id: int, object_type: str):
    """The signed-in patient's own row, or 404 with a denied-access audit row."""
    return scoped(model, object_id, object_type, patient_id=current_patient().id)


def new_key() -> str:
    """A fresh idempotency key for a money form: a resubmit of the same form records once."""
    return uuid.uuid4().hex


def names(ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {p.id: p.display_name for p in get_session().exec(select(Patient).where(
        Patient.id.in_(ids), Patient.clinic_id == g.clinic.id)).all()}


def signer() -> str:
    """The rendering provider signs (box 31); a manager issuing it is named only if no provider is."""
    provider = get_session().exec(select(Provider).where(Provider.clinic_id == g.clinic.id,
                                                         Provider.user_id == current_user.id)).first()
    return provider.display_name if provider else ""


def send_stored(doc, object_type: str, filename: str):
    """Serve stored bytes only while they match their SHA-256; a mismatch is refused and audited."""
    if not pdf_intact(doc):
        audit.record_denied("billing.document_tampered", object_type=object_type, object_id=doc.id,
                            patient_id=doc.patient_id, detail="stored bytes do not match their SHA-256")
        abort(409, "This document no longer matches its fingerprint and cannot be served. The event was logged.")
    audit.record("billing.document_download", object_type=object_type, object_id=doc.id, patient_id=doc.patient_id)
    return pdf_response(doc.pdf, filename)


def send_void_copy(doc, object_type: str, filename: str, render):
    """A voided document for staff: the issued content marked VOID with its replacement, never the clean bytes."""
    if not pdf_intact(doc):
        return send_stored(doc, object_type, filename)  # refused and audited there
    audit.record("billing.document_download", object_type=object_type, object_id=doc.id, patient_id=doc.patient_id,
                 detail="void copy")
    return pdf_response(render(), filename.replace(".pdf", "-VOID.pdf"))
