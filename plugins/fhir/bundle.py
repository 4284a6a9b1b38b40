"""A patient's record as a FHIR R4 (R4B models) Bundle of type "collection".

"collection", not "document": no Composition is built, since nobody attests the export as a whole.
Every resource gets a stable ``urn:uuid`` (uuid5 of clinic, resource type and row id), so two
exports of the same record name the same resources. Rows marked 42 CFR Part 2 or psychotherapy
note never leave; plugins answer ``patient_documents`` with only what may leave.
"""
from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path

from fhir.resources.R4B.bundle import Bundle
from sqlmodel import Session, select

from core import hooks
from core.documents import DocumentRef
from core.models import Clinic, Diagnosis, Medication, OutcomeScore, Patient, Sensitivity


@lru_cache(maxsize=1)
def codes() -> dict:
    return json.loads((Path(__file__).parent / "data" / "codes.json").read_text())


def _urn(clinic: Clinic, kind: str, row_id) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'glia:{clinic.id}:{kind}:{row_id}')}"


def _instant(moment: datetime) -> str:
    """UTC with an explicit offset (FHIR instants and dateTimes with a time need one)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None


def mrn_system(clinic: Clinic) -> str:
    return f"{codes()['mrn_system_base']}{clinic.slug}:mrn"


def organization(clinic: Clinic) -> dict:
    org = {"resourceType": "Organization", "name": clinic.name, "active": True}
    if clinic.npi:
        org["identifier"] = [{"system": "http://hl7.org/fhir/sid/us-npi", "value": clinic.npi}]
    return org


def patient_resource(clinic: Clinic, patient: Patient, org_ref: str) -> dict:
    name = {"use": "official", "family": patient.legal_last_name, "given": [patient.legal_first_name]}
    return {"resourceType": "Patient",
            "identifier": [{"use": "usual", "system": mrn_system(clinic), "value": patient.mrn,
                            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                 "code": "MR"}]}}],
            "active": not patient.archived, "name": [name], "birthDate": patient.dob.isoformat(),
            "gender": codes()["gender"].get(patient.sex, "unknown"),
            "managingOrganization": {"reference": org_ref}}


def condition(dx: Diagnosis, subject: str) -> dict:
    status = "resolved" if dx.resolved_on else "active"
    res = {"resourceType": "Condition",
           "clinicalStatus": {"coding": [{"system": codes()["condition_clinical"], "code": status}]},
           "code": {"coding": [{"system": codes()["icd10cm"], "code": dx.code, "display": dx.description or None}],
                    "text": dx.description or dx.code},
           "subject": {"reference": subject},
           "onsetDateTime": _day(dx.noted_on), "abatementDateTime": _day(dx.resolved_on)}
    return res


def medication_statement(med: Medication, subject: str, today: date) -> dict:
    done = med.stop_date is not None and med.stop_date <= today
    period = {"start": _day(med.start_date), "end": _day(med.stop_date)}
    dosage = " ".join(p for p in (med.dose, med.frequency) if p)
    res = {"resourceType": "MedicationStatement", "status": "completed" if done or med.is_trial else "active",
           "medicationCodeableConcept": {"text": med.name}, "subject": {"reference": subject}}
    if period["start"] or period["end"]:
        res["effectivePeriod"] = {k: v for k, v in period.items() if v}
    if dosage:
        res["dosage"] = [{"text": dosage}]
    return res


def observation(score: OutcomeScore, subject: str) -> dict:
    code = codes()["instruments"][score.instrument.value]
    return {"resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": codes()["observation_category"], "code": "survey"}]}],
            "code": {"coding": [{"system": codes()["loinc"], "code": code["code"], "display": code["display"]}],
                     "text": f"{score.instrument.value} total score"},
            "subject": {"reference": subject}, "effectiveDateTime": _instant(score.taken_at),
            "valueInteger": score.total, "interpretation": [{"text": score.band}]}


def document_reference(doc: DocumentRef, subject: str, base_url: str) -> dict:
    attachment = {"contentType": doc.content_type, "url": base_url.rstrip("/") + doc.url, "title": doc.title,
                  "creation": _instant(doc.issued_at)}
    if doc.pdf is not None:  # FHIR's hash is base64 SHA-1 of the bytes; never claimed without them
        attachment["hash"] = base64.b64encode(hashlib.sha1(doc.pdf).digest()).decode()
        attachment["size"] = len(doc.pdf)
    return {"resourceType": "DocumentReference", "status": "current",
            "type": {"text": doc.kind}, "description": doc.title, "subject": {"reference": subject},
            "date": _instant(doc.issued_at), "content": [{"attachment": attachment}]}


def _rows(session: Session, model, patient: Patient, *order):
    return session.exec(select(model).where(model.clinic_id == patient.clinic_id, model.patient_id == patient.id)
                        .order_by(*order)).all()


def build(session: Session, clinic: Clinic, patient: Patient, *, base_url: str, now: datetime) -> Bundle:
    """The validated Bundle; documents come from the enabled plugins through the clinic relay."""
    org_ref, subject = _urn(clinic, "Organization", clinic.id), _urn(clinic, "Patient", patient.id)
    entries = [(org_ref, organization(clinic)), (subject, patient_resource(clinic, patient, org_ref))]
    for dx in _rows(session, Diagnosis, patient, Diagnosis.id):
        entries.append((_urn(clinic, "Condition", dx.id), condition(dx, subject)))
    today = now.date()
    for med in _rows(session, Medication, patient, Medication.id):
        if med.sensitivity == Sensitivity.general:  # Part 2 and psychotherapy-note rows stay in the clinic
            entries.append((_urn(clinic, "MedicationStatement", med.id), medication_statement(med, subject, today)))
    for score in _rows(session, OutcomeScore, patient, OutcomeScore.taken_at, OutcomeScore.id):
        entries.append((_urn(clinic, "Observation", score.id), observation(score, subject)))
    docs, _errors = hooks.relay(clinic).collect("patient_documents", expect=DocumentRef, clinic=clinic, patient=patient)
    for doc in sorted(docs, key=lambda d: (d.issued_at, d.url)):
        entries.append((_urn(clinic, "DocumentReference", doc.url), document_reference(doc, subject, base_url)))
    return Bundle.model_validate({
        "resourceType": "Bundle", "type": "collection", "timestamp": _instant(now),
        "identifier": {"system": "urn:ietf:rfc:3986", "value": _urn(clinic, "Export", f"{patient.id}:{_instant(now)}")},
        "entry": [{"fullUrl": url, "resource": _clean(res)} for url, res in entries]})


def _clean(value):
    """Drop empty fields: FHIR forbids nulls and empty strings."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
