"""The FHIR plugin: a chart's record downloaded as a FHIR R4 Bundle that validates, matches the
rows, and leaves out Part 2 and psychotherapy-note material; only clinical roles of the clinic."""
from __future__ import annotations

import base64
import hashlib
import json
from datetime import date, datetime, timezone

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from sqlmodel import select

from core.db import session_scope
from core.models import (AuditEvent, Clinic, ClinicianKind, Diagnosis, Instrument, Medication, OutcomeScore,
                         OutsideClinician, Patient, Sensitivity, User)
from core.plugin_state import set_enabled
from plugins.coordination.models import CoordinationDocument, CoordinationLetter
from tests.conftest import BUILTIN
from tests.support import login, post

FHIR = [*BUILTIN, ("fhir", "plugins.fhir")]
TAKEN = datetime(2026, 3, 4, 15, 30, tzinfo=timezone.utc)
PDF = b"%PDF-1.4 the signed progress letter"


def _clinic(session, slug):
    return session.exec(select(Clinic).where(Clinic.slug == slug)).one()


def _enable(app, slug="stillwater"):
    with session_scope(app.extensions["glia"].engine) as s:
        set_enabled(s, _clinic(s, slug), "fhir", True, plugins=app.extensions["glia"].plugins)


def _letter(s, clinic, patient, recipient, signer, *, pdf=PDF, part2=False, notes=False, signed=True):
    doc = None
    if signed:
        doc = CoordinationDocument(clinic_id=clinic.id, patient_id=patient.id, recipient_id=recipient.id,
                                   kind="progress", pdf=pdf, sha256=hashlib.sha256(pdf).hexdigest(), contents="",
                                   signed_by_id=signer.id, signed_at=TAKEN)
        s.add(doc)
        s.flush()
    letter = CoordinationLetter(clinic_id=clinic.id, patient_id=patient.id, recipient_id=recipient.id, kind="progress",
                                status="signed" if signed else "draft", include_part2=part2,
                                include_psychotherapy_notes=notes, created_by_id=signer.id, created_at=TAKEN,
                                updated_at=TAKEN, document_id=doc.id if doc else None)
    s.add(letter)
    s.flush()
    return letter.id


def _arrange(app, slug="stillwater") -> dict:
    """A patient of ``slug`` with one of everything, and the letters that must not leave."""
    with session_scope(app.extensions["glia"].engine) as s:
        clinic = _clinic(s, slug)
        signer = s.exec(select(User).where(User.email == "clinician@demo.glia.example")).one()
        patient = Patient(clinic_id=clinic.id, mrn="FHIR-0001", legal_first_name="Fhira", legal_last_name="Export",
                          dob=date(1980, 5, 17), sex="F")
        s.add(patient)
        s.flush()
        s.add_all([
            Diagnosis(clinic_id=clinic.id, patient_id=patient.id, code="F33.2", description="MDD, recurrent, severe",
                      noted_on=date(2025, 1, 2)),
            Diagnosis(clinic_id=clinic.id, patient_id=patient.id, code="F41.1", description="GAD",
                      noted_on=date(2024, 2, 3), resolved_on=date(2025, 6, 1)),
            Medication(clinic_id=clinic.id, patient_id=patient.id, name="Sertraline", dose="100 mg", frequency="daily",
                       start_date=date(2025, 2, 1)),
            Medication(clinic_id=clinic.id, patient_id=patient.id, name="Bupropion", dose="150 mg",
                       start_date=date(2024, 1, 1), stop_date=date(2024, 9, 1)),
            Medication(clinic_id=clinic.id, patient_id=patient.id, name="Buprenorphine", dose="8 mg",
                       sensitivity=Sensitivity.part2),
            Medication(clinic_id=clinic.id, patient_id=patient.id, name="Therapynote", sensitivity=Sensitivity.psychotherapy_note),
            OutcomeScore(clinic_id=clinic.id, patient_id=patient.id, instrument=Instrument.phq9, items=[2] * 9, total=18,
                         band="Moderately severe", item9=2, taken_at=TAKEN),
            OutcomeScore(clinic_id=clinic.id, patient_id=patient.id, instrument=Instrument.gad7, items=[1] * 7, total=7,
                         band="Mild", taken_at=TAKEN),
        ])
        recipient = OutsideClinician(clinic_id=clinic.id, kind=ClinicianKind.psychiatrist, name="Dr. Outside")
        s.add(recipient)
        s.flush()
        ids = {"patient": patient.id, "clinic": clinic.id,
               "sent": _letter(s, clinic, patient, recipient, signer),
               "part2": _letter(s, clinic, patient, recipient, signer, pdf=b"%PDF part2", part2=True),
               "notes": _letter(s, clinic, patient, recipient, signer, pdf=b"%PDF notes", notes=True),
               "draft": _letter(s, clinic, patient, recipient, signer, signed=False)}
    return ids


@pytest.fixture
def fhir_app(make_app):
    app = make_app(plugins=FHIR)
    _enable(app)
    return app


def _download(app, role, patient_id, clinic_id=None):
    client = app.test_client()
    login(app, client, role)
    if clinic_id is not None:  # a user of several clinics works in one at a time
        assert post(app, client, "/switch-clinic", {"clinic_id": clinic_id}).status_code == 302
    return client.get(f"/fhir/patients/{patient_id}/bundle.json")


def test_the_download_is_a_valid_bundle_matching_the_rows_without_part2(fhir_app, db):
    ids = _arrange(fhir_app)
    resp = _download(fhir_app, "clinician", ids["patient"])
    assert resp.status_code == 200
    assert resp.mimetype == "application/fhir+json"
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    bundle = Bundle.model_validate_json(resp.data)
    assert bundle.type == "collection"
    by_type: dict[str, list[dict]] = {}
    for entry in bundle.entry:
        assert entry.fullUrl.startswith("urn:uuid:")
        raw = entry.resource.model_dump(mode="json", exclude_none=True)
        get_fhir_model_class(entry.resource.get_resource_type()).model_validate(raw)  # each validates as its type
        by_type.setdefault(entry.resource.get_resource_type(), []).append(json.loads(entry.resource.model_dump_json()))

    (patient,) = by_type["Patient"]
    assert patient["identifier"][0]["value"] == "FHIR-0001"
    assert patient["identifier"][0]["system"] == "urn:glia:clinic:stillwater:mrn"
    assert (patient["birthDate"], patient["gender"], patient["name"][0]["family"]) == ("1980-05-17", "female", "Export")
    assert [o["name"] for o in by_type["Organization"]] == ["Stillwater Ketamine Clinic (demo)"]

    conditions = {c["code"]["coding"][0]["code"]: c for c in by_type["Condition"]}
    assert conditions["F33.2"]["code"]["coding"][0]["system"] == "http://hl7.org/fhir/sid/icd-10-cm"
    assert conditions["F33.2"]["clinicalStatus"]["coding"][0]["code"] == "active"
    assert conditions["F41.1"]["clinicalStatus"]["coding"][0]["code"] == "resolved"
    assert conditions["F41.1"]["abatementDateTime"] == "2025-06-01"

    meds = {m["medicationCodeableConcept"]["text"]: m for m in by_type["MedicationStatement"]}
    assert set(meds) == {"Sertraline", "Bupropion"}  # the Part 2 and psychotherapy-note rows stay home
    assert meds["Sertraline"]["status"] == "active" and meds["Sertraline"]["dosage"][0]["text"] == "100 mg daily"
    assert meds["Bupropion"]["status"] == "completed"
    assert meds["Bupropion"]["effectivePeriod"] == {"start": "2024-01-01", "end": "2024-09-01"}

    scores = {o["code"]["coding"][0]["code"]: o for o in by_type["Observation"]}
    assert scores["44261-6"]["valueInteger"] == 18 and scores["70274-6"]["valueInteger"] == 7
    assert scores["44261-6"]["code"]["coding"][0]["system"] == "http://loinc.org"
    assert scores["44261-6"]["effectiveDateTime"] in ("2026-03-04T15:30:00Z", "2026-03-04T15:30:00+00:00")
    assert scores["44261-6"]["interpretation"][0]["text"] == "Moderately severe"

    (doc,) = by_type["DocumentReference"]  # the signed letter only: not Part 2, notes, or the draft
    attachment = doc["content"][0]["attachment"]
    assert attachment["url"].endswith(f"/coordination/letters/{ids['sent']}/pdf")
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(PDF).digest()).decode()
    assert attachment["contentType"] == "application/pdf" and attachment["size"] == len(PDF)
    text = resp.get_data(as_text=True)
    assert "Buprenorphine" not in text and f"/letters/{ids['part2']}/" not in text
    assert f"/letters/{ids['notes']}/" not in text and f"/letters/{ids['draft']}/" not in text

    db.rollback()
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "fhir.export",
                                            AuditEvent.patient_id == ids["patient"])).first() is not None


def test_only_clinical_roles_of_the_patients_clinic_download(fhir_app):
    ids = _arrange(fhir_app)
    assert _download(fhir_app, "admin", ids["patient"], ids["clinic"]).status_code == 200
    assert _download(fhir_app, "manager", ids["patient"]).status_code == 200
    assert _download(fhir_app, "frontdesk", ids["patient"]).status_code == 403
    assert _download(fhir_app, "patient", ids["patient"]).status_code in (403, 404)
    _enable(fhir_app, "harbor")
    assert _download(fhir_app, "harbor.clinician", ids["patient"]).status_code == 404  # another clinic's patient


def test_the_chart_links_the_download_only_where_enabled(make_app):
    app = make_app(plugins=FHIR)  # off by default: GLIA_DEFAULT_ENABLED = False
    ids = _arrange(app)
    client = app.test_client()
    login(app, client, "clinician")
    assert "Download FHIR record (JSON)" not in client.get(f"/patients/{ids['patient']}").get_data(as_text=True)
    assert client.get(f"/fhir/patients/{ids['patient']}/bundle.json").status_code == 404
    _enable(app)
    chart = client.get(f"/patients/{ids['patient']}").get_data(as_text=True)
    assert f'href="/fhir/patients/{ids["patient"]}/bundle.json"' in chart
    assert "Download FHIR record (JSON)" in chart
    assert client.get(f"/fhir/patients/{ids['patient']}/bundle.json").status_code == 200


def test_issued_superbills_are_referenced_and_voided_ones_are_not(fhir_app):
    from plugins.billing.models import BillingSuperbill, BillingVoid

    ids = _arrange(fhir_app)
    kept, gone = b"%PDF superbill kept", b"%PDF superbill voided"
    with session_scope(fhir_app.extensions["glia"].engine) as s:
        rows = [BillingSuperbill(clinic_id=ids["clinic"], patient_id=ids["patient"], number=900000 + n, scope="month",
                                 period_start=date(2026, n, 1), period_end=date(2026, n, 28), data={}, pdf=pdf,
                                 sha256=hashlib.sha256(pdf).hexdigest(), issued_at=TAKEN)
                for n, pdf in ((1, kept), (2, gone))]
        s.add_all(rows)
        s.flush()
        s.add(BillingVoid(clinic_id=ids["clinic"], document_type="superbill", document_id=rows[1].id,
                          reason="wrong period", voided_at=TAKEN))
        kept_id, gone_id = rows[0].id, rows[1].id
    bundle = Bundle.model_validate_json(_download(fhir_app, "clinician", ids["patient"]).data)
    attachments = [e.resource.content[0].attachment for e in bundle.entry
                   if e.resource.get_resource_type() == "DocumentReference"]
    bills = [a for a in attachments if "/superbills/" in a.url]
    assert [a.url.rsplit("/", 1)[1] for a in bills] == [f"{kept_id}.pdf"]
    assert bills[0].hash == hashlib.sha1(kept).digest()  # the model decodes base64Binary to the bytes
    assert not [a for a in attachments if a.url.endswith(f"/{gone_id}.pdf")]
