"""Drafts and signing: one open draft per purpose, discarding, a failed section blocks signing, page layout."""
from __future__ import annotations

import pytest
from sqlmodel import func, select

from core.db import new_session
from core.models import Medication, utcnow
from plugins.coordination.compose import fmt_day
from plugins.coordination.models import CoordinationDocument, CoordinationLetter
from tests.coordination_support import (audit_count, benzo_patient, clinic, fresh, letter_id_from,  # noqa: F401 - fixture
                                        page_texts, pdf_text, sign, version_of, write_letter)
from tests.example_plugins import BUILTIN, labnotes
from tests.support import login, post

LABNOTES = ("labnotes", "tests.example_plugins.labnotes")


@pytest.fixture
def labnotes_app(make_app):
    """The built-in plugins plus one whose letter section fails until it is fixed."""
    labnotes.BROKEN["on"] = True
    yield make_app(plugins=BUILTIN + [LABNOTES])
    labnotes.BROKEN["on"] = True


def test_a_letter_is_not_signed_while_a_contributed_section_fails(labnotes_app, db, fresh):
    app = labnotes_app
    client = app.test_client()
    patient, _benzo, psychiatrist = benzo_patient(db)
    login(app, client, "clinician")
    letter_id = write_letter(app, client, patient.id, psychiatrist)

    preview = client.get(f"/coordination/letters/{letter_id}/preview")
    assert preview.status_code == 200
    assert "the labnotes plugin&#39;s section failed to render" in preview.text
    assert "Sign letter" not in preview.text and "Consent and safety screening" in preview.text
    refused = post(app, client, f"/coordination/letters/{letter_id}/sign", {"version": version_of(app, letter_id)})
    assert refused.status_code == 422
    assert "cannot be signed until every section renders" in refused.text
    assert fresh().get(CoordinationLetter, letter_id).status == "draft"
    assert fresh().exec(select(func.count()).select_from(CoordinationDocument)
                        .where(CoordinationDocument.patient_id == patient.id)).one() == 0
    assert audit_count(app, "coordination.sign_refused") == 1

    labnotes.BROKEN["on"] = False  # the lab system answers again: the section renders and the letter signs
    preview = client.get(f"/coordination/letters/{letter_id}/preview")
    assert labnotes.TITLE in preview.text and "failed to render" not in preview.text
    body = pdf_text(sign(app, client, letter_id))
    assert labnotes.TITLE in body and "No outstanding lab results on file." in body
    assert labnotes.TITLE in fresh().exec(select(CoordinationDocument.contents).where(
        CoordinationDocument.patient_id == patient.id)).one()


def test_writing_the_same_letter_again_reuses_the_open_draft_and_drafts_can_be_discarded(app, client, db, fresh):
    patient, _benzo, psychiatrist = benzo_patient(db)
    login(app, client, "clinician")
    first = write_letter(app, client, patient.id, psychiatrist, kind="progress")
    again = post(app, client, f"/coordination/patients/{patient.id}/letters", {"kind": "progress", "recipient_id": psychiatrist})
    assert again.status_code == 302 and letter_id_from(again) == first
    page = client.get(again.headers["Location"])
    assert "already open" in page.text
    other = write_letter(app, client, patient.id, psychiatrist, kind="treatment_start")  # another purpose: its own draft
    assert other != first

    def drafts():
        return fresh().exec(select(func.count()).select_from(CoordinationLetter).where(
            CoordinationLetter.patient_id == patient.id)).one()

    count = drafts()
    resp = post(app, client, f"/coordination/letters/{first}/discard")
    assert resp.status_code == 302
    assert fresh().get(CoordinationLetter, first).status == "discarded" and drafts() == count  # kept, set aside
    assert audit_count(app, "coordination.letter_discarded") == 1
    listing = client.get(f"/coordination/patients/{patient.id}").text
    assert f"/coordination/letters/{first}\"" not in listing and f"/coordination/letters/{other}\"" in listing
    assert f"/coordination/letters/{first}\"" not in client.get("/coordination/").text
    refused = post(app, client, f"/coordination/letters/{first}/sign", {"version": version_of(app, first)})
    assert refused.status_code == 409 and "discarded" in refused.text
    fresh_draft = write_letter(app, client, patient.id, psychiatrist, kind="progress")  # a new one, not the discarded
    assert fresh_draft not in (first, other)

    # a signed letter cannot be discarded
    sign(app, client, other)
    resp = post(app, client, f"/coordination/letters/{other}/discard")
    assert resp.status_code == 409 and "Only a draft can be discarded" in resp.text
    assert fresh().get(CoordinationLetter, other).status == "signed"
    # GET never discards; a letter of another clinic is a 404
    assert client.get(f"/coordination/letters/{fresh_draft}/discard").status_code == 405
    harbor = app.test_client()
    login(app, harbor, "harbor.clinician")
    assert post(app, harbor, f"/coordination/letters/{fresh_draft}/discard").status_code == 404
    assert fresh().get(CoordinationLetter, fresh_draft).status == "draft"


def test_long_letter_keeps_rows_whole_and_names_the_patient_on_every_later_page(app, client, db):
    """A letter of three pages and more: no table row is split across pages, and every page after the
    first carries the patient's name, date of birth and "Page X of Y"."""
    patient, _benzo, psychiatrist = benzo_patient(db)
    stillwater = clinic(db)
    with new_session(app.extensions["glia"].engine) as s:
        for i in range(40):
            s.add(Medication(clinic_id=stillwater.id, patient_id=patient.id, name=f"Testmed{i:02d}", drug_class="",
                             dose=f"{10 + i} mg", frequency=f"with food and water each morning, review each visit, Q{i:02d}Z",
                             prescriber="Dr. Gen Practice (demo)", created_at=utcnow()))
        s.commit()
    login(app, client, "clinician")
    pages = page_texts(sign(app, client, write_letter(app, client, patient.id, psychiatrist)))
    total = len(pages)
    assert total >= 3
    running = f"{patient.legal_name}, date of birth {fmt_day(patient.dob)}"
    assert f"Page 1 of {total}" in pages[0]
    for number, text in enumerate(pages[1:], start=2):
        assert running in text and f"Page {number} of {total}" in text, number

    def page_of(token: str) -> int:
        found = [i for i, text in enumerate(pages) if token in text]
        assert len(found) == 1, (token, found)
        return found[0]

    # each medication row: its name (first line) and the end of its wrapped dose cell (last line) on one page
    spans = {page_of(f"Testmed{i:02d}") for i in range(40)}
    assert len(spans) >= 2  # the table does run over a page break
    for i in range(40):
        assert page_of(f"Testmed{i:02d}") == page_of(f"Q{i:02d}Z"), i


def test_an_out_of_range_recipient_id_is_refused_with_a_message_not_a_500(app, client, db):
    patient, _benzo, _psychiatrist = benzo_patient(db)
    login(app, client, "clinician")
    before = db.exec(select(func.count()).select_from(CoordinationLetter)).one()
    resp = post(app, client, f"/coordination/patients/{patient.id}/letters",
                {"kind": "progress", "recipient_id": "99999999999999999999"})
    assert resp.status_code == 422
    db.rollback()
    assert db.exec(select(func.count()).select_from(CoordinationLetter)).one() == before
    assert client.get("/patients/?page=99999999999999999999").status_code == 200
