"""Patients: search without PHI in URLs, validation that writes nothing, the chart by role, PHQ-9 alerts."""
from __future__ import annotations

import re

from datetime import date

from sqlalchemy import event
from sqlmodel import select

from core.db import session_scope
from core.models import AuditEvent, Clinic, Diagnosis, Medication, OutcomeScore, Patient
from tests.support import login, post
from tests.test_workflow import count, plugin, reader


def patient_by_mrn(db, mrn: str) -> Patient:
    return db.exec(select(Patient).where(Patient.mrn == mrn)).one()


def test_search_is_posted_escaped_and_paged(app, client, db):
    stillwater = db.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
    with session_scope(db.get_bind()) as s:  # 30 more patients: two pages of 25
        for n in range(30):
            s.add(Patient(clinic_id=stillwater.id, mrn=f"PG{n:03d}", legal_first_name="Pagey",
                          legal_last_name=f"Pagination{n:02d}", dob=date(1980, 1, 1 + n % 28)))
    login(app, client, "frontdesk")
    first = client.get("/patients/")
    assert first.status_code == 200 and "page 1 of 3" in first.text
    assert "Page 2 of 3" in client.get("/patients/?page=2").text

    found = post(app, client, "/patients/", {"q": "pagination"})
    assert "30 matches" in found.text and "page 1 of 2" in found.text
    assert 'name="q" value="pagination"' in found.text and "?q=" not in found.text  # terms stay out of URLs
    second = post(app, client, "/patients/", {"q": "pagination", "page": "2"})
    assert "Pagination29" in second.text and "Pagination00" not in second.text

    for term in ("%", "_", "\\", "' OR 1=1 --", "%' OR '1'='1"):
        hit = post(app, client, "/patients/", {"q": term})
        assert hit.status_code == 200 and "0 matches" in hit.text, term
    assert "1 match " in post(app, client, "/patients/", {"q": "st1003"}).text
    casey = patient_by_mrn(db, "ST1003")
    by_dob = post(app, client, "/patients/", {"q": casey.dob.strftime("%m/%d/%Y")})
    assert casey.legal_last_name in by_dob.text
    for name in ("Zoë", "Łukasz"):
        hit = post(app, client, "/patients/", {"q": name})
        assert name in hit.text and "0 matches" not in hit.text, name


def test_search_finds_the_start_of_any_name_part_and_follows_edits(app, client, db):
    """Search reads the terms table: a new patient is found at once, a renamed one by the new name only,
    any part of a hyphenated name or the MRN matches from its start, and another clinic's never."""
    login(app, client, "frontdesk")
    good = {"mrn": "ST9100", "legal_first_name": "Wren", "legal_last_name": "Fakely-Quillwood", "dob": "1984-05-06",
            "sex": "F", "state": "OR", "postal_code": "97477"}
    assert post(app, client, "/patients/new", good).status_code == 302
    for term in ("wren fakely", "Quillwood", "QUILLW", "st91", "Wren Fakely-Quillwood"):
        assert "1 match " in post(app, client, "/patients/", {"q": term}).text, term
    for term in ("illwood", "wren nobody", "9100"):
        assert "0 matches" in post(app, client, "/patients/", {"q": term}).text, term
    wren = patient_by_mrn(db, "ST9100")
    assert post(app, client, f"/patients/{wren.id}/edit", {**good, "legal_last_name": "Renamedson"}).status_code == 302
    assert "1 match " in post(app, client, "/patients/", {"q": "renamed"}).text
    assert "0 matches" in post(app, client, "/patients/", {"q": "quillwood"}).text
    harbor = app.test_client()
    login(app, harbor, "harbor.manager")
    assert "0 matches" in post(app, harbor, "/patients/", {"q": "renamedson"}).text


def test_patient_form_validates_and_writes_nothing_on_error(make_app, db):
    created = []
    app = make_app(plugins=[plugin("recorder", patient_created=lambda patient: created.append(patient.mrn))])
    client = app.test_client()
    login(app, client, "frontdesk")
    before = count(db, Patient)
    good = {"mrn": "ST9000", "legal_first_name": "Łukasz", "legal_last_name": "李小龍", "dob": "1990-02-28",
            "sex": "M", "state": "OR", "postal_code": "97477", "phone": "541-555-0199"}
    cases = [({"dob": "2021-02-30"}, "Date of birth: enter a real date"),
             ({"dob": "2999-01-01"}, "Date of birth cannot be in the future"),
             ({"mrn": "ST1003"}, "already has that MRN"),
             ({"legal_last_name": ""}, "Legal last name is required"),
             ({"phone": "12"}, "Phone:"),
             ({"email": "not-an-email"}, "Email: enter an address")]
    for change, message in cases:
        resp = post(app, client, "/patients/new", {**good, **change})
        assert resp.status_code == 422 and message in resp.text, change
    assert count(db, Patient) == before and created == []

    ok = post(app, client, "/patients/new", {**good, "clinic_id": "2", "user_id": "1", "archived": "1"})
    assert ok.status_code == 302
    with reader(db) as s:
        p = s.exec(select(Patient).where(Patient.mrn == "ST9000")).one()
    assert (p.legal_first_name, p.legal_last_name, p.user_id, p.archived) == ("Łukasz", "李小龍", None, False)
    assert p.clinic_id == patient_by_mrn(db, "ST1003").clinic_id
    assert created == ["ST9000"]
    assert "李小龍" in client.get(f"/patients/{p.id}").text

    other = patient_by_mrn(db, "ST1004")
    clash = post(app, client, f"/patients/{other.id}/edit", {**good, "mrn": "ST1003",
                                                              "legal_first_name": other.legal_first_name})
    assert clash.status_code == 422
    with reader(db) as s:
        assert s.get(Patient, other.id).mrn == "ST1004"


def test_chart_shows_clinical_data_by_role_and_audits_each_view(app, client, db):
    p = patient_by_mrn(db, "ST1003")
    login(app, client, "clinician")
    views = count(db, AuditEvent, AuditEvent.action == "patient.view", AuditEvent.patient_id == p.id)
    page = client.get(f"/patients/{p.id}").text
    assert count(db, AuditEvent, AuditEvent.action == "patient.view", AuditEvent.patient_id == p.id) == views + 1
    for part in ("Medications", "Past antidepressant trials", "Care team", "Diagnoses", "<svg", "band-severe",
                 "trend-line", "Safety alert"):
        assert part in page, part
    assert "style=" not in page
    meds = ["Lamotrigine", "Naltrexone"]
    assert all(m in page for m in meds)

    desk = app.test_client()
    login(app, desk, "frontdesk")
    limited = desk.get(f"/patients/{p.id}").text
    assert p.legal_last_name in limited and "Treatment sessions" in limited
    for hidden in meds + ["Diagnoses", "PHQ-9", "Care team", "Safety alert"]:
        assert hidden not in limited, hidden
    assert post(app, desk, f"/patients/{p.id}/scores", {"instrument": "PHQ-9"}).status_code == 403

    harbor = db.exec(select(Patient).join(Clinic, Clinic.id == Patient.clinic_id).where(Clinic.slug == "harbor")).first()
    denied = count(db, AuditEvent, AuditEvent.outcome == "denied")
    for url in (f"/patients/{harbor.id}", f"/patients/{harbor.id}/edit"):
        assert client.get(url).status_code == 404
    assert post(app, client, f"/patients/{harbor.id}/scores", {"instrument": "PHQ-9"}).status_code == 404
    assert count(db, AuditEvent, AuditEvent.outcome == "denied") == denied + 3


def test_phq9_is_scored_raises_the_item9_alert_and_is_reviewed_once(app, client, db):
    p = patient_by_mrn(db, "ST1005")
    login(app, client, "clinician")
    before = count(db, OutcomeScore, OutcomeScore.patient_id == p.id)
    partial = post(app, client, f"/patients/{p.id}/scores", {"instrument": "PHQ-9", "item1": "2", "item9": "1"})
    assert partial.status_code == 422 and "Answer all 9 PHQ-9 questions" in partial.text
    # each unanswered question says so beside its answer; the answers given are kept
    assert re.search(r'name="item2"[^>]*aria-invalid="true" aria-describedby="e-phq9-item2"', partial.text)
    assert 'id="e-phq9-item2">Choose an answer (0 to 3).</' in partial.text and 'id="e-phq9-item1"' not in partial.text
    assert re.search(r'id="phq9-item1".*?<option value="2" selected>', partial.text, re.S)
    out_of_range = {"instrument": "GAD-7", **{f"item{i}": "4" for i in range(1, 8)}}
    assert post(app, client, f"/patients/{p.id}/scores", out_of_range).status_code == 422
    assert count(db, OutcomeScore, OutcomeScore.patient_id == p.id) == before

    answers = {"instrument": "PHQ-9", **{f"item{i}": "2" for i in range(1, 9)}, "item9": "1"}
    saved = post(app, client, f"/patients/{p.id}/scores", answers, follow_redirects=True)
    assert "PHQ-9 recorded: 17 (Moderately severe)" in saved.text and "Item 9 is positive" in saved.text
    with reader(db) as s:
        score = s.exec(select(OutcomeScore).where(OutcomeScore.patient_id == p.id)
                       .order_by(OutcomeScore.id.desc())).first()
    assert (score.total, score.item9, score.alert, score.reviewed_at) == (17, 1, True, None)
    assert f'/alerts/{score.id}/review' in client.get("/").text

    desk = app.test_client()
    login(app, desk, "frontdesk")
    assert "item 9" not in desk.get("/").text.lower()
    assert post(app, desk, f"/alerts/{score.id}/review").status_code == 403
    assert post(app, client, f"/alerts/{score.id}/review").status_code == 302
    assert post(app, client, f"/alerts/{score.id}/review").status_code == 302  # a repeat changes nothing
    with reader(db) as s:
        reviewed = s.get(OutcomeScore, score.id)
    assert reviewed.reviewed_at is not None and reviewed.reviewed_by_id is not None
    assert count(db, AuditEvent, AuditEvent.action == "alert.review", AuditEvent.object_id == str(score.id)) == 1
    assert f'/alerts/{score.id}/review' not in client.get("/").text


def test_diagnoses_must_be_billable_icd10_codes(app, client, db):
    p = patient_by_mrn(db, "ST1006")
    login(app, client, "clinician")
    for code, message in (("F33", "is a category"), ("Z99.999", "is not an ICD-10-CM code")):
        resp = post(app, client, f"/patients/{p.id}/diagnoses", {"code": code})
        assert resp.status_code == 422 and message in resp.text
    assert post(app, client, f"/patients/{p.id}/diagnoses", {"code": "f33.2"}).status_code == 302
    with reader(db) as s:
        assert s.exec(select(Diagnosis).where(Diagnosis.patient_id == p.id, Diagnosis.code == "F33.2")).first()


def test_pages_use_a_fixed_number_of_queries(make_app, db):
    """No query per row: a patient with many sessions costs the same queries as one with none."""
    app = make_app(plugins=[])
    client = app.test_client()
    login(app, client, "clinician")
    statements = []
    event.listen(app.extensions["glia"].engine, "before_cursor_execute",
                 lambda *args: statements.append(1))

    def queries(url):
        statements.clear()
        assert client.get(url).status_code == 200
        return len(statements)

    few, many = patient_by_mrn(db, "ST1000"), patient_by_mrn(db, "ST1004")  # 0 and 8 past sessions
    assert queries(f"/patients/{few.id}") == queries(f"/patients/{many.id}")
    assert queries("/patients/") < 20


def test_medications_are_added_validated_and_stopped(app, client, db):
    p = patient_by_mrn(db, "ST1007")
    login(app, client, "clinician")
    bad = post(app, client, f"/patients/{p.id}/medications", {"med_name": "", "drug_class": "candy",
                                                              "start_date": "2026-13-01", "sensitivity": "general"})
    assert bad.status_code == 422
    for message in ("Medication is required", "Choose a drug class", "enter a real date"):
        assert message in bad.text
    ok = post(app, client, f"/patients/{p.id}/medications", {"med_name": "Alprazolam", "drug_class": "benzodiazepine",
                                                             "med_dose": "0.5 mg", "sensitivity": "general",
                                                             "patient_id": "1"})
    assert ok.status_code == 302
    with reader(db) as s:
        med = s.exec(select(Medication).where(Medication.name == "Alprazolam", Medication.patient_id == p.id)).one()
    assert "Alprazolam" in client.get(f"/patients/{p.id}").text
    other = patient_by_mrn(db, "ST1008")
    assert post(app, client, f"/patients/{other.id}/medications/{med.id}/stop").status_code == 404
    assert post(app, client, f"/patients/{p.id}/medications/{med.id}/stop").status_code == 302
    with reader(db) as s:
        assert s.get(Medication, med.id).stop_date is not None
