"""Helpers for the care-coordination letter tests: write, save, sign and read letters back."""
from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader
from sqlmodel import func, select

from core.db import new_session
from core.models import (AuditEvent, CareTeamMember, Clinic, ClinicianKind, Medication, Modality, Patient,
                         SessionStatus, TreatmentSession)
from plugins.coordination.models import CoordinationDocument, CoordinationLetter
from tests.support import post


@pytest.fixture
def fresh(app):
    """fresh() -> a new read session that sees everything requests committed so far."""
    sessions = []

    def make():
        sessions.append(new_session(app.extensions["glia"].engine, write=False))
        return sessions[-1]

    yield make
    for s in sessions:
        s.close()


def pdf_text(data: bytes) -> str:
    return " ".join(" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(data)).pages)


def clinic(db, slug="stillwater") -> Clinic:
    return db.exec(select(Clinic).where(Clinic.slug == slug)).one()


def benzo_patient(db, slug="stillwater") -> tuple[Patient, Medication, int]:
    """A patient on a current benzodiazepine, with a psychiatrist and no letters yet."""
    c = clinic(db, slug)
    lettered = select(CoordinationDocument.patient_id)
    row = db.exec(select(Patient, Medication, CareTeamMember.clinician_id)
                  .join(Medication, Medication.patient_id == Patient.id)
                  .join(CareTeamMember, CareTeamMember.patient_id == Patient.id)
                  .where(Patient.clinic_id == c.id, Medication.drug_class == "benzodiazepine",
                         Medication.is_trial.is_(False), Medication.stop_date.is_(None),
                         CareTeamMember.role == ClinicianKind.psychiatrist, Patient.id.not_in(lettered))
                  .order_by(Patient.id)).first()
    assert row is not None
    return row


def write_letter(app, client, patient_id, recipient_id, kind="progress", **fields) -> int:
    resp = post(app, client, f"/coordination/patients/{patient_id}/letters", {"kind": kind, "recipient_id": recipient_id})
    assert resp.status_code == 302, resp.text
    letter_id = int(re.search(r"/letters/(\d+)", resp.headers["Location"]).group(1))
    if fields:
        save(app, client, letter_id, **fields)
    return letter_id


def version_of(app, letter_id) -> int:
    with new_session(app.extensions["glia"].engine, write=False) as s:
        return s.get(CoordinationLetter, letter_id).version


def save(app, client, letter_id, expect=302, **fields):
    data = {"version": version_of(app, letter_id), "opening": "Opening words.", "closing": "Kind regards.", **fields}
    resp = post(app, client, f"/coordination/letters/{letter_id}", data)
    assert resp.status_code == expect, resp.text
    return resp


def sign(app, client, letter_id) -> bytes:
    assert client.get(f"/coordination/letters/{letter_id}/preview").status_code == 200
    resp = post(app, client, f"/coordination/letters/{letter_id}/sign", {"version": version_of(app, letter_id)})
    assert resp.status_code == 302, resp.text
    pdf = client.get(f"/coordination/letters/{letter_id}/pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    return pdf.data


def audit_count(app, action: str) -> int:
    with new_session(app.extensions["glia"].engine, write=False) as s:
        return s.exec(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)).one()


def treated_patient(db, slug: str, modality: Modality) -> tuple[Patient, int, list[TreatmentSession]]:
    """A patient with completed sessions of ``modality``, their psychiatrist, and those sessions in order."""
    c = clinic(db, slug)
    treated = select(TreatmentSession.patient_id).where(
        TreatmentSession.clinic_id == c.id, TreatmentSession.modality == modality,
        TreatmentSession.status == SessionStatus.discharged)
    patient, psychiatrist = db.exec(select(Patient, CareTeamMember.clinician_id)
                                    .join(CareTeamMember, CareTeamMember.patient_id == Patient.id)
                                    .where(Patient.clinic_id == c.id, Patient.id.in_(treated),
                                           CareTeamMember.role == ClinicianKind.psychiatrist)
                                    .order_by(Patient.id)).first()
    done = db.exec(select(TreatmentSession).where(
        TreatmentSession.clinic_id == c.id, TreatmentSession.patient_id == patient.id,
        TreatmentSession.status == SessionStatus.discharged).order_by(TreatmentSession.started_at)).all()
    return patient, psychiatrist, done


def page_texts(data: bytes) -> list[str]:
    """Each page's text, whitespace collapsed."""
    return [" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(data)).pages]


def letter_id_from(resp) -> int:
    return int(re.search(r"/letters/(\d+)", resp.headers["Location"]).group(1))
