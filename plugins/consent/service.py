"""Consent logic shared by the views and the hooks: templates, settings and acknowledgements.

Signing and issuing live in plugins.consent.documents, screening history in plugins.consent.screening,
each patient's status in plugins.consent.status and the treatment gate in plugins.consent.gate.
"""
from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path

from flask import url_for
from markupsafe import Markup, escape
from sqlmodel import Session, func, select
from werkzeug.routing import BuildError

from core.models import Clinic, Modality, SessionStatus, VitalSign, utcnow
from plugins.consent.models import Acknowledgement, ConsentTemplate, ContraindicationItem

PLUGIN = "consent"
DATA = Path(__file__).resolve().parent / "data"
BP_CODE = "blood_pressure"
# who may acknowledge a risk or confirm a changed screening answer: a clinical judgement, so neither
# the front desk, a manager nor an administrator (a medical director signs in as a clinician)
REVIEWERS = ("clinician",)


def default_templates() -> list[dict]:
    specs = json.loads((DATA / "templates.json").read_text(encoding="utf-8"))
    for spec in specs:
        spec["body"] = (DATA / spec.pop("file")).read_text(encoding="utf-8")
    return specs


_SPECS = json.loads((DATA / "templates.json").read_text(encoding="utf-8"))
KINDS: dict[str, str] = {s["kind"]: s["title"] for s in _SPECS}
# informed-consent kind -> the modalities it informs the patient about (every modality needs one)
INFORMED: dict[str, list[str]] = {s["kind"]: s["informed_consent_for"] for s in _SPECS if "informed_consent_for" in s}
MODALITIES = [m.value for m in Modality]


def default_contraindications() -> list[dict]:
    return json.loads((DATA / "contraindications.json").read_text(encoding="utf-8"))


def sha256(data: str | bytes) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


# -- Markdown (a small subset, escaped first so template text can never inject markup) --------

_BOLD = re.compile(r"\*\*(.+?)\*\*")


def _inline(text: str) -> str:
    return _BOLD.sub(r"<strong>\1</strong>", str(escape(text)))


def markdown(text: str, under: int = 2) -> Markup:
    """Headings (#, ##, ###), paragraphs, "- " lists and **bold**; everything else is text.

    ``under`` is the level of the page heading the text sits below: its sections (##) come one level
    down, so screen-reader users meet no skipped heading level.
    """
    out: list[str] = []
    para: list[str] = []
    items: list[str] = []

    def flush():
        if para:
            out.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for raw in text.splitlines():
        line = raw.rstrip()
        heading = re.match(r"^(#{1,3})\s+(.*)$", line)
        if heading:
            flush()
            level = min(len(heading.group(1)) + under - 1, 6)
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif line.startswith("- "):
            if para:
                flush()
            items.append(line[2:].strip())
        elif not line.strip():
            flush()
        elif items and raw.startswith("  "):
            items[-1] += " " + line.strip()
        else:
            if items:
                flush()
            para.append(line.strip())
    flush()
    return Markup("\n".join(out))


# -- templates and the screening list, copied per clinic on first use ------------------------

def ensure_clinic_data(session: Session, clinic: Clinic) -> None:
    """Copy the shipped defaults into the clinic's rows the first time they are needed."""
    have = set(session.exec(select(ConsentTemplate.kind).where(ConsentTemplate.clinic_id == clinic.id).distinct()).all())
    for spec in default_templates():
        if spec["kind"] not in have:
            session.add(ConsentTemplate(clinic_id=clinic.id, kind=spec["kind"], version=1, title=spec["title"],
                                        body=spec["body"], acknowledgements=spec["acknowledgements"],
                                        change_note="Shipped default", created_at=utcnow()))
    if session.exec(select(func.count()).select_from(ContraindicationItem)
                    .where(ContraindicationItem.clinic_id == clinic.id)).one() == 0:
        for position, item in enumerate(default_contraindications()):
            session.add(ContraindicationItem(clinic_id=clinic.id, position=position, **item))
    session.flush()


def current_templates(session: Session, clinic: Clinic) -> dict[str, ConsentTemplate]:
    """kind -> the newest version, for the clinic (its defaults copied in first if any kind is missing)."""
    found = _newest_templates(session, clinic)
    if KINDS.keys() - found.keys():
        ensure_clinic_data(session, clinic)
        found = _newest_templates(session, clinic)
    return found


def _newest_templates(session: Session, clinic: Clinic) -> dict[str, ConsentTemplate]:
    newest = (select(ConsentTemplate.kind, func.max(ConsentTemplate.version).label("v"))
              .where(ConsentTemplate.clinic_id == clinic.id).group_by(ConsentTemplate.kind).subquery())
    rows = session.exec(select(ConsentTemplate).join(
        newest, (ConsentTemplate.kind == newest.c.kind) & (ConsentTemplate.version == newest.c.v))
        .where(ConsentTemplate.clinic_id == clinic.id)).all()
    return {t.kind: t for t in rows}


def active_items(session: Session, clinic: Clinic) -> list[ContraindicationItem]:
    ensure_clinic_data(session, clinic)
    return list(session.exec(select(ContraindicationItem).where(
        ContraindicationItem.clinic_id == clinic.id, ContraindicationItem.active == True)  # noqa: E712
        .order_by(ContraindicationItem.position, ContraindicationItem.id)).all())


# -- settings ---------------------------------------------------------------------------------

def settings(session: Session, clinic: Clinic) -> dict:
    from core.plugin_state import settings_for

    return settings_for(session, clinic, PLUGIN)


def required_kinds(values: dict, modality: str) -> list[str]:
    return [k for k in values.get(f"required_{modality}", []) if k in KINDS]


def uninformed_modalities(values: dict) -> list[str]:
    """Modalities whose required consents include no informed consent for that modality."""
    return [m for m in MODALITIES
            if not any(m in INFORMED.get(k, ()) for k in required_kinds(values, m))]


def link_to(endpoint: str, **values) -> str:
    """A URL for ``endpoint``, or "" when that page does not exist (yet)."""
    try:
        return url_for(endpoint, **values)
    except BuildError:  # a core page that is not there (yet)
        return ""


def modality_of(session, clinic, patient_id: int) -> str | None:
    """The modality of the patient's next session, else of their latest one."""
    from core.schedule import patient_course

    rows = [(r.modality, r.status) for r in patient_course(session, clinic, patient_id)]
    upcoming = [m for m, s in rows if s in (SessionStatus.scheduled, SessionStatus.checked_in)]
    chosen = upcoming[-1] if upcoming else rows[0][0] if rows else None
    return chosen.value if chosen is not None else None


def statement_digest(*parts) -> str:
    """The SHA-256 of a clinician's signed statement: its parts joined unambiguously."""
    return sha256("\x1f".join("" if p is None else str(p) for p in parts))


def acknowledge(session: Session, clinic: Clinic, patient_id: int, *, code: str, label: str, rationale: str,
                clinician, screening_id: int | None = None, treatment_id: int | None = None,
                vital: VitalSign | None = None, ip: str = "", at: datetime | None = None) -> Acknowledgement:
    """A clinician's signed decision to proceed despite a relative contraindication or a high BP.

    A relative item's acknowledgement names the screening whose "yes" it weighed; a blood-pressure
    one names the reading (and keeps its values), so a higher reading later needs a new one.
    """
    signed_at = at or utcnow()
    systolic, diastolic = (vital.systolic, vital.diastolic) if vital is not None else (None, None)
    statement = statement_digest(patient_id, screening_id, treatment_id, code, label, rationale, clinician.id,
                                 clinician.name, signed_at.isoformat(), vital.id if vital else None, systolic,
                                 diastolic)
    ack = Acknowledgement(clinic_id=clinic.id, patient_id=patient_id, screening_id=screening_id,
                          treatment_id=treatment_id, item_code=code, item_label=label, rationale=rationale,
                          clinician_user_id=clinician.id, clinician_name=clinician.name, signed_at=signed_at,
                          ip=ip[:45], text_sha256=statement, vital_id=vital.id if vital else None,
                          systolic=systolic, diastolic=diastolic)
    session.add(ack)
    session.flush()
    return ack
