"""The Letters pages: compose, preview, sign, download, send, permissions, due letters, settings.

Only clinical roles see letters; front desk gets 403 from the route declarations. Every
object is looked up by id AND the current clinic; a miss is a 404 with a denied-access audit row.
The routes live in the modules below, by what they do; this module holds the blueprint and the
lookups they share.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, g, url_for
from sqlmodel import select
from werkzeug.routing import BuildError

from core import audit, hooks
from core.auth import clinic_row_or_404
from core.db import get_session
from core.models import OutsideClinician, Patient, User
from core.plugin_state import settings_for
from core.slots import LetterSection
from plugins.coordination.models import CoordinationDisclosure, CoordinationDocument, CoordinationLetter

bp = Blueprint("coordination", __name__, url_prefix="/coordination",
               template_folder=str(Path(__file__).resolve().parent.parent / "templates"))

READ = ("admin", "manager", "clinician")
WRITE = ("clinician",)
SEND = ("manager", "clinician")
SETTINGS = ("admin", "manager")
PDF_TEMPLATE = "coordination/letter_pdf.html"


def _settings() -> dict:
    return settings_for(get_session(), g.clinic, "coordination")


def _denied(object_type: str, object_id) -> None:
    audit.record_denied("coordination.not_found", object_type=object_type, object_id=object_id)
    abort(404)


def _patient(patient_id: int) -> Patient:
    return clinic_row_or_404(Patient, patient_id, object_type="patient", action="coordination.not_found")


def _letter(letter_id: int, *, lock: bool = False) -> CoordinationLetter:
    stmt = select(CoordinationLetter).where(CoordinationLetter.id == letter_id, CoordinationLetter.clinic_id == g.clinic.id)
    letter = get_session().exec(stmt.with_for_update() if lock else stmt).first()
    if letter is None:
        _denied("coordination_letter", letter_id)
    return letter


def _document(letter: CoordinationLetter) -> CoordinationDocument:
    doc = get_session().exec(select(CoordinationDocument).where(
        CoordinationDocument.id == letter.document_id, CoordinationDocument.clinic_id == g.clinic.id)).first()
    if doc is None:
        abort(404)
    return doc


def chart_url(patient_id: int) -> str:
    """The core chart when the clinic UI provides it, else this plugin's page for the patient."""
    try:
        return url_for("patients.chart", patient_id=patient_id)
    except BuildError:
        return url_for("coordination.patient", patient_id=patient_id)


@bp.app_context_processor
def _helpers():
    return {"coordination_chart_url": chart_url}


def _extra_sections(patient: Patient, recipient: OutsideClinician) -> tuple[list, list]:
    items, errors = hooks.relay(g.clinic).collect("letter_sections", expect=LetterSection, clinic=g.clinic,
                                                  patient=patient, recipient=recipient)
    return hooks.ordered(items), errors


def _people(ids) -> dict[int, str]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return dict(get_session().exec(select(User.id, User.name).where(User.id.in_(ids))).all())




def _recipient_names(due) -> dict[int, str]:
    ids = {d.recipient_id for d in due if d.recipient_id}
    if not ids:
        return {}
    return dict(get_session().exec(select(OutsideClinician.id, OutsideClinician.name).where(
        OutsideClinician.clinic_id == g.clinic.id, OutsideClinician.id.in_(ids))).all())


def _sent_by_document(doc_ids) -> dict[int, list[CoordinationDisclosure]]:
    out: dict[int, list[CoordinationDisclosure]] = {}
    if doc_ids:
        for d in get_session().exec(select(CoordinationDisclosure).where(
                CoordinationDisclosure.clinic_id == g.clinic.id, CoordinationDisclosure.document_id.in_(doc_ids))
                .order_by(CoordinationDisclosure.sent_on, CoordinationDisclosure.id)).all():
            out.setdefault(d.document_id, []).append(d)
    return out


from plugins.coordination.views import delivery, drafts, lists, settings  # noqa: E402,F401 - registers the routes
from plugins.coordination.views.lists import panel_html  # noqa: E402,F401 - the chart panel hook calls it
