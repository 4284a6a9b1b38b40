"""The consent blueprint and the lookups every consent page shares.

Every object is looked up by id *and* clinic (and patient where it has one); anything else is a
404 with a denied-access audit row.
"""
from __future__ import annotations

import unicodedata

from flask import Blueprint, abort, g

from core import audit
from core.auth import clinic_row_or_404
from core.db import get_session
from core.models import Patient
from plugins.consent import service
from plugins.consent.models import ConsentTemplate

bp = Blueprint("consent", __name__, url_prefix="/consent", template_folder="../templates")
MANAGERS = ("manager", "admin")


def deny(object_type: str, object_id, patient_id: int | None = None):
    audit.record_denied("consent.access", object_type=object_type, object_id=object_id, patient_id=patient_id)
    abort(404)


def patient_or_404(patient_id: int) -> Patient:
    return clinic_row_or_404(Patient, patient_id, object_type="patient", action="consent.access")


def template_or_404(kind: str) -> ConsentTemplate:
    template = service.current_templates(get_session(), g.clinic).get(kind)
    if template is None:
        abort(404)
    return template


def control_characters(text: str) -> bool:
    """Text holding control characters other than line breaks and tabs (a NUL would fail on PostgreSQL)."""
    return any(unicodedata.category(c) == "Cc" and c not in "\n\r\t" for c in text)
