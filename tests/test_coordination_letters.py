"""Care-coordination letters: compose, sign, read the PDF back, send, privacy and bad input."""
from __future__ import annotations

import hashlib
import re
from datetime import date, timedelta

from sqlalchemy import text
from sqlmodel import func, select

from core.db import new_session
from core.dosing import dose_text
from core.models import AuditEvent, Instrument, Medication, Modality, OutcomeScore, Sensitivity
from plugins.coordination.compose import clinic_today
from plugins.coordination.models import (CoordinationDisclosure, CoordinationDocument, CoordinationLetter,
                                         CoordinationPermission)
from tests.coordination_support import (audit_count, benzo_patient, clinic, fresh, pdf_text,  # noqa: F401 - fixture
                                        save, sign, treated_patient, version_of, write_letter)
from tests.support import login, post


def test_progress_letter_pdf_carries_the_chart_signed_and_immutable(app, client, db, fresh):
    patient, benzo, psychiatrist = benzo_patient(db)
    phq = db.exec(select(OutcomeScore.total).where(OutcomeScore.patient_id == patient.id,
                                                   OutcomeScore.instrument == Instrument.phq9)
                  .order_by(OutcomeScore.taken_at)).all()
    assert phq
    login(app, client, "clinician")
    review = (date.today() + timedelta(days=30)).isoformat()
    letter_id = write_letter(app, client, patient.id, psychiatrist, crisis_plan="Call 988 or the clinic line.",
                             requests="Please send your latest note.", next_review=review)

    preview = client.get(f"/coordination/letters/{letter_id}/preview")
    assert benzo.name in preview.text and "Sign letter" in preview.text

    data = sign(app, client, letter_id)
    body = pdf_text(data)
    assert patient.legal_name in body
    assert f"{benzo.name} (flagged)" in body and "(Benzodiazepine)" in body
    assert "lowering or holding the dose" in body
    table = body[body.index("PHQ-9 item 9"):]
    for value in phq:  # the trend table holds every PHQ-9 total, in order
        m = re.search(rf"\b{value}\b", table)
        assert m, value
        table = table[m.end():]
    assert "Electronically signed by Cleo Clinician, MD" in body
    assert "Please send your latest note." in body and "Call 988" in body
    assert "Consent and safety screening" in body  # the consent plugin's letter_sections answer

    db = fresh()
    doc = db.exec(select(CoordinationDocument).where(CoordinationDocument.patient_id == patient.id)).one()
    assert doc.sha256 == hashlib.sha256(data).hexdigest()
    assert benzo.id in doc.flagged_medication_ids
    again = client.get(f"/coordination/letters/{letter_id}/pdf")
    assert again.data == data  # byte-identical re-download from the stored bytes
    assert audit_count(app, "coordination.letter_downloaded") == 2

    # a signed letter cannot be edited or signed again: clear error, nothing changed
    before = db.get(CoordinationLetter, letter_id).fields
    resp = post(app, client, f"/coordination/letters/{letter_id}", {"version": version_of(app, letter_id),
                                                                    "opening": "Changed."})
    assert resp.status_code == 409 and "signed and can no longer be changed" in resp.text
    assert post(app, client, f"/coordination/letters/{letter_id}/sign", {"version": 99}).status_code == 409
    db = fresh()
    assert db.get(CoordinationLetter, letter_id).fields == before
    assert db.exec(select(func.count()).select_from(CoordinationDocument)
                   .where(CoordinationDocument.patient_id == patient.id)).one() == 1


def test_sending_logs_the_disclosure_and_tampered_bytes_are_refused(app, client, db, fresh, backend):
    patient, _benzo, psychiatrist = benzo_patient(db)
    login(app, client, "clinician")
    letter_id = write_letter(app, client, patient.id, psychiatrist, kind="treatment_start")
    sign(app, client, letter_id)
    today = clinic_today(clinic(db)).isoformat()

    bad = post(app, client, f"/coordination/letters/{letter_id}/sent", {"method": "pigeon", "sent_on": today})
    assert bad.status_code == 422 and "fax, mail, secure email or hand delivery" in bad.text
    resp = post(app, client, f"/coordination/letters/{letter_id}/sent", {"method": "fax", "sent_on": today})
    assert resp.status_code == 302
    db = fresh()
    row = db.exec(select(CoordinationDisclosure).where(CoordinationDisclosure.patient_id == patient.id)).one()
    doc = db.exec(select(CoordinationDocument).where(CoordinationDocument.patient_id == patient.id)).one()
    assert (row.recipient_id, row.method, row.sent_on, row.document_id) == (psychiatrist, "fax", date.fromisoformat(today), doc.id)
    assert "Treatment start" in row.description and doc.sha256 in row.description
    assert row.user_id == db.exec(select(AuditEvent.user_id).where(AuditEvent.action == "coordination.disclosed",
                                                             AuditEvent.patient_id == patient.id)).one()
    page = client.get(f"/coordination/patients/{patient.id}")
    assert "Disclosure log" in page.text and "Fax" in page.text

    # the stored bytes are append-only in the database; an attacker who gets past that is still caught
    engine = app.extensions["glia"].engine
    with engine.begin() as conn:
        if backend == "sqlite":
            conn.execute(text("DROP TRIGGER coordination_document_no_update"))
        else:
            conn.execute(text("ALTER TABLE coordination_document DISABLE TRIGGER USER"))
        conn.execute(text("UPDATE coordination_document SET pdf = :b WHERE id = :i"), {"b": b"%PDF-1.7 forged", "i": doc.id})
    resp = client.get(f"/coordination/letters/{letter_id}/pdf")
    assert resp.status_code == 409 and resp.mimetype != "application/pdf"
    assert audit_count(app, "coordination.integrity_failed") == 1


def test_append_only_tables_refuse_changes_in_the_database(app, db):
    engine = app.extensions["glia"].engine
    for sql in ("UPDATE coordination_document SET kind = 'x'", "DELETE FROM coordination_disclosure"):
        try:
            with engine.begin() as conn:
                conn.execute(text(sql))
        except Exception as err:  # noqa: BLE001 - either driver's error
            assert "append-only" in str(err)
        else:
            raise AssertionError(f"{sql} was allowed")


def test_privacy_sensitive_data_needs_an_authorization(app, client, db, fresh):
    patient, _benzo, psychiatrist = benzo_patient(db)
    c = clinic(db)
    with new_session(app.extensions["glia"].engine) as s:
        s.add(Medication(clinic_id=c.id, patient_id=patient.id, name="Buprenorphine-naloxone", drug_class="opioid",
                         dose="8 mg", frequency="daily", sensitivity=Sensitivity.part2))
        s.add(Medication(clinic_id=c.id, patient_id=patient.id, name="Hydroxyzine", drug_class="antihistamine",
                         dose="25 mg", frequency="as needed", sensitivity=Sensitivity.psychotherapy_note))
        s.commit()
    login(app, client, "clinician")

    # asked for, but nothing on file: left out, and the preview says so
    first = write_letter(app, client, patient.id, psychiatrist, include_part2="1", include_psychotherapy_notes="1",
                         psychotherapy_note="Private session content.")
    preview = client.get(f"/coordination/letters/{first}/preview").text
    assert "Left out of this letter" in preview and "Buprenorphine" not in preview
    body = pdf_text(sign(app, client, first))
    assert "Buprenorphine" not in body and "Hydroxyzine" not in body and "Private session content" not in body
    assert "42 CFR part 2" not in body

    # the patient's consent covering Part 2 only: Part 2 records go, with the re-disclosure notice
    resp = post(app, client, f"/coordination/patients/{patient.id}/permissions",
                {"recipient_id": psychiatrist, "granted_on": clinic_today(clinic(db)).isoformat(), "covers_part2": "1"})
    assert resp.status_code == 302
    second = write_letter(app, client, patient.id, psychiatrist, include_part2="1", include_psychotherapy_notes="1",
                          psychotherapy_note="Private session content.")
    body = pdf_text(sign(app, client, second))
    assert "Buprenorphine-naloxone" in body and "42 CFR part 2" in body
    # 42 CFR 2.32(a)(1) as amended in February 2024, in the regulation's own words
    assert "Notice to accompany disclosure" in body
    assert "in any civil, criminal, administrative, or legislative proceedings by any Federal, State, or local authority" in body
    assert "unless at least one of the following applies" in body
    assert ("expressly permitted by the written consent of the individual whose information is being disclosed in this "
            "record or as otherwise permitted by 42 CFR part 2") in body
    assert "You are a covered entity or business associate and have received the record for treatment, payment" in body
    assert "You have received the record from a covered entity or business associate as permitted by 45 CFR part 164" in body
    assert "NOT sufficient to meet the required elements of written consent to further use or redisclose" in body
    assert "NOT sufficient for this purpose" not in body  # the pre-2024 notice
    assert "Hydroxyzine" not in body and "Private session content" not in body
    db = fresh()
    doc = db.exec(select(CoordinationDocument).order_by(CoordinationDocument.id.desc())).first()
    assert "Part 2" in doc.contents


def test_clinic_setting_requires_permission_before_sending(app, client, db, fresh):
    patient, _benzo, psychiatrist = benzo_patient(db)
    manager = app.test_client()
    login(app, manager, "manager")
    resp = post(app, manager, "/coordination/settings", {"require_patient_permission": "1", "induction_sessions": "6",
                                                         "treatment_start.opening": "Our clinic's own opening words."})
    assert resp.status_code == 302
    login(app, client, "clinician")
    letter_id = write_letter(app, client, patient.id, psychiatrist, kind="treatment_start")
    assert "Our clinic's own opening words." in pdf_text(sign(app, client, letter_id))  # the clinic's wording
    today = clinic_today(clinic(db))  # the clinic's date, not the server's

    def send():
        return post(app, client, f"/coordination/letters/{letter_id}/sent", {"method": "mail", "sent_on": today.isoformat()})

    def disclosures():
        return fresh().exec(select(func.count()).select_from(CoordinationDisclosure)
                            .where(CoordinationDisclosure.patient_id == patient.id)).one()

    blocked = send()
    assert blocked.status_code == 422 and "requires the patient&#39;s permission" in blocked.text
    assert disclosures() == 0
    # an expired permission does not count
    post(app, client, f"/coordination/patients/{patient.id}/permissions",
         {"recipient_id": psychiatrist, "granted_on": (today - timedelta(days=400)).isoformat(),
          "expires_on": (today - timedelta(days=35)).isoformat()})
    assert send().status_code == 422 and disclosures() == 0
    post(app, client, f"/coordination/patients/{patient.id}/permissions",
         {"recipient_id": psychiatrist, "granted_on": today.isoformat(), "expires_on": (today + timedelta(days=365)).isoformat()})
    assert send().status_code == 302 and disclosures() == 1
    db = fresh()
    active = db.exec(select(CoordinationPermission).where(CoordinationPermission.patient_id == patient.id,
                                                          CoordinationPermission.expires_on > today)).one()
    assert post(app, client, f"/coordination/permissions/{active.id}/revoke").status_code == 302
    assert send().status_code == 422 and disclosures() == 1


def test_bad_input_changes_nothing(app, client, db, fresh):
    patient, _benzo, psychiatrist = benzo_patient(db)
    harbor_patient, _m, harbor_psychiatrist = benzo_patient(db, "harbor")
    login(app, client, "clinician")

    def letters():
        return fresh().exec(select(func.count()).select_from(CoordinationLetter)).one()

    count = letters()
    unknown = post(app, client, f"/coordination/patients/{patient.id}/letters", {"kind": "progress", "recipient_id": harbor_psychiatrist})
    assert unknown.status_code == 422 and "Choose a recipient from this patient&#39;s care team" in unknown.text
    nokind = post(app, client, f"/coordination/patients/{patient.id}/letters", {"kind": "novel", "recipient_id": psychiatrist})
    assert nokind.status_code == 422
    denied = audit_count(app, "coordination.not_found")
    other = post(app, client, f"/coordination/patients/{harbor_patient.id}/letters", {"kind": "progress", "recipient_id": harbor_psychiatrist})
    assert other.status_code == 404 and harbor_patient.legal_last_name not in other.text
    assert client.get(f"/coordination/patients/{harbor_patient.id}").status_code == 404
    assert audit_count(app, "coordination.not_found") == denied + 2
    assert letters() == count

    letter_id = write_letter(app, client, patient.id, psychiatrist, extra_field="x")
    resp = save(app, client, letter_id, expect=422, next_review="2020-01-01", opening="Should not stick.")
    assert "cannot be in the past" in resp.text
    resp = save(app, client, letter_id, expect=422, next_review="someday")
    assert fresh().get(CoordinationLetter, letter_id).fields["opening"] == "Opening words."
    stale = post(app, client, f"/coordination/letters/{letter_id}", {"version": 1, "opening": "Stale."})
    assert stale.status_code == 409
    assert client.get(f"/coordination/letters/{letter_id}/pdf").status_code == 404  # not signed yet


def test_front_desk_cannot_read_letters(app, client, db):
    patient, _benzo, psychiatrist = benzo_patient(db)
    login(app, client, "clinician")
    letter_id = write_letter(app, client, patient.id, psychiatrist)
    sign(app, client, letter_id)
    fresh = app.test_client()
    login(app, fresh, "frontdesk")
    for url in ("/coordination/", f"/coordination/patients/{patient.id}", f"/coordination/letters/{letter_id}",
                f"/coordination/letters/{letter_id}/pdf", f"/coordination/letters/{letter_id}/preview"):
        resp = fresh.get(url)
        assert resp.status_code == 403, url
        assert patient.legal_last_name not in resp.text
    assert "/coordination/" not in fresh.get("/").text  # no nav item, no widget


def test_disabled_for_a_clinic_its_pages_answer_404(app, client, db):
    patient, _benzo, psychiatrist = benzo_patient(db)
    login(app, client, "clinician")
    letter_id = write_letter(app, client, patient.id, psychiatrist)
    assert "Letters" in client.get("/").text
    admin = app.test_client()
    login(app, admin, "admin")
    assert post(app, admin, f"/admin/plugins/coordination/{clinic(db).id}", {"enabled": "0"}).status_code == 302
    for url in ("/coordination/", f"/coordination/patients/{patient.id}", f"/coordination/letters/{letter_id}"):
        assert client.get(url).status_code == 404, url
    assert post(app, client, f"/coordination/letters/{letter_id}/sign", {"version": 1}).status_code == 404
    assert "/coordination/" not in client.get("/").text
    # harbor still has it
    harbor = app.test_client()
    login(app, harbor, "harbor.clinician")
    assert harbor.get("/coordination/").status_code == 200


def test_letter_to_the_psychiatrist_gives_iv_doses_in_mg_and_mg_per_kg(app, client, db):
    """The outside psychiatrist reads the weight-based dose an IV patient had, not only milligrams."""
    patient, psychiatrist, done = treated_patient(db, "stillwater", Modality.iv_ketamine)
    assert done and all(t.weight_kg for t in done)
    login(app, client, "clinician")
    body = pdf_text(sign(app, client, write_letter(app, client, patient.id, psychiatrist)))
    latest = dose_text(done[-1])
    per_kg = f"{done[-1].dose_mg / done[-1].weight_kg:.2f} mg/kg"
    assert per_kg in latest and f"most recent dose {latest}" in body  # the treatment plan
    table = body[body.index("Sessions to date"):body.index("Symptom scores")]
    assert table.count("mg/kg") == len(done)  # each session's row


def test_esketamine_letter_gives_the_dose_in_mg_only(app, client, db):
    """mg/kg is no measure for esketamine: the letter names the labelled dose in mg."""
    patient, psychiatrist, done = treated_patient(db, "harbor", Modality.esketamine_nasal)
    assert done and done[-1].weight_kg  # a weight on file must not turn into mg/kg
    login(app, client, "harbor.clinician")
    body = pdf_text(sign(app, client, write_letter(app, client, patient.id, psychiatrist)))
    assert f"most recent dose {dose_text(done[-1])}" in body and f"{done[-1].dose_mg:g} mg" in body
    table = body[body.index("Sessions to date"):body.index("Symptom scores")]
    assert "56 mg" in table and "mg/kg" not in body
