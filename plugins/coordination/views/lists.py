"""Lists of letters: all recent letters, one patient's letters page and the chart panel."""
from __future__ import annotations

from flask import g, render_template
from markupsafe import Markup
from sqlmodel import select

from core import audit
from core.auth import staff
from core.db import get_session
from core.models import OutsideClinician, Patient
from core.plugin_state import settings_for
from plugins.coordination import compose, letters
from plugins.coordination.models import CoordinationDisclosure, CoordinationLetter, CoordinationPermission
from plugins.coordination.views import (READ, _patient, _people, _recipient_names, _sent_by_document, _settings,
                                        bp)


@bp.get("/")
@staff(*READ)
def index():
    session = get_session()
    due = letters.due_letters(session, g.clinic)
    recent = session.exec(select(CoordinationLetter, Patient, OutsideClinician)
                          .join(Patient, Patient.id == CoordinationLetter.patient_id)
                          .join(OutsideClinician, OutsideClinician.id == CoordinationLetter.recipient_id)
                          .where(CoordinationLetter.clinic_id == g.clinic.id, CoordinationLetter.status != letters.DISCARDED)
                          .order_by(CoordinationLetter.updated_at.desc()).limit(50)).all()
    sent = _sent_by_document([l.document_id for l, _p, _r in recent if l.document_id])
    audit.record("coordination.list", object_type="coordination_letter", detail=f"{len(recent)} letters")
    return render_template("coordination/index.html", due=due, recent=recent, sent=sent,
                           kinds=compose.kinds(_settings()), recipients=_recipient_names(due))


def _patient_page(patient: Patient, *, error: str = "", errors: dict | None = None, form: dict | None = None,
                  status: int = 200):
    """The patient's letters page; ``error`` is about starting a letter, ``errors`` (field -> message)
    about the permission form, shown beside its fields."""
    session = get_session()
    team = letters.care_team(session, g.clinic, patient.id)
    rows = session.exec(select(CoordinationLetter).where(
        CoordinationLetter.clinic_id == g.clinic.id, CoordinationLetter.patient_id == patient.id,
        CoordinationLetter.status != letters.DISCARDED).order_by(CoordinationLetter.created_at.desc())).all()
    permissions = session.exec(select(CoordinationPermission).where(
        CoordinationPermission.clinic_id == g.clinic.id, CoordinationPermission.patient_id == patient.id)
        .order_by(CoordinationPermission.recorded_at.desc())).all()
    disclosures = session.exec(select(CoordinationDisclosure).where(
        CoordinationDisclosure.clinic_id == g.clinic.id, CoordinationDisclosure.patient_id == patient.id)
        .order_by(CoordinationDisclosure.sent_on.desc(), CoordinationDisclosure.id.desc())).all()
    names = {c.id: c.name for _m, c in team}
    missing = {r.recipient_id for r in rows} | {p.recipient_id for p in permissions} | {d.recipient_id for d in disclosures}
    missing -= set(names)
    if missing:
        names.update(dict(session.exec(select(OutsideClinician.id, OutsideClinician.name).where(
            OutsideClinician.clinic_id == g.clinic.id, OutsideClinician.id.in_(missing))).all()))
    audit.record("coordination.patient_letters", object_type="patient", object_id=patient.id, patient_id=patient.id)
    return render_template("coordination/patient.html", patient=patient, team=team, letters=rows,
                           permissions=permissions, disclosures=disclosures, names=names,
                           users=_people([d.user_id for d in disclosures]),
                           due=letters.due_letters(session, g.clinic, [patient.id]),
                           kinds=compose.kinds(_settings()), methods=letters.METHODS, today=compose.clinic_today(g.clinic),
                           error=error, errors=errors or {}, form=form or {}, settings=_settings()), status


@bp.get("/patients/<int:patient_id>")
@staff(*READ)
def patient(patient_id: int):
    return _patient_page(_patient(patient_id))


def panel_html(clinic, patient) -> Markup:
    """The chart panel: letters sent and due for one patient (called from the chart hook)."""
    session = get_session()
    rows = session.exec(select(CoordinationLetter).where(
        CoordinationLetter.clinic_id == clinic.id, CoordinationLetter.patient_id == patient.id,
        CoordinationLetter.status != letters.DISCARDED).order_by(CoordinationLetter.created_at.desc()).limit(10)).all()
    sent = _sent_by_document([r.document_id for r in rows if r.document_id])
    return Markup(render_template("coordination/panel.html", patient=patient, letters=rows, sent=sent,
                                  due=letters.due_letters(session, clinic, [patient.id]),
                                  kinds=compose.kinds(settings_for(session, clinic, "coordination"))))
