"""A letter says only what the records show, in the words that fit the drug, the moment and the recipient.

Each test signs real letters and reads the PDF back with pypdf.
"""
from __future__ import annotations

import json
import re
from datetime import date
from zoneinfo import ZoneInfo

from sqlmodel import func, select

from core.db import new_session
from core.models import (CareTeamMember, Clinic, ClinicianKind, Medication, Modality, OutcomeScore, Patient,
                         SessionStatus, TreatmentSession, User, utcnow)
from plugins.coordination.models import CoordinationDocument
from plugins.coordination.wording import DATA
from tests.coordination_support import (benzo_patient, clinic, fresh, pdf_text,  # noqa: F401 - fixture
                                        sign, treated_patient, version_of, write_letter)
from tests.support import login, post

KINDS = json.loads((DATA / "letter_kinds.json").read_text(encoding="utf-8"))["kinds"]
# Statements about where a patient stands; each needs a record behind it.
STATUS_PHRASES = {
    "item 9 reviewed": re.compile(r"reviewed by", re.I),
    "item 9 awaiting review": re.compile(r"awaiting clinician review", re.I),
    "consent signed": re.compile(r"signed by the patient [A-Z][a-z]{2} \d{1,2}, \d{4}"),
    "consent awaiting attestation": re.compile(r"awaiting the explaining clinician's attestation", re.I),
    "screening completed": re.compile(r"screening: last completed", re.I),
    "screening awaiting review": re.compile(r"answers awaiting a clinician's review", re.I),
    "induction complete": re.compile(r"Induction series complete:|has completed the induction", re.I),
    "induction under way": re.compile(r"sessions of the induction series completed", re.I),
    "medication hold": re.compile(r"\b(is|are|was|were|been) (being )?held\b|hold (is |was )?agreed|on hold", re.I),
    "raised with the prescriber": re.compile(r"We raised it with", re.I),
}


def statuses(body: str) -> set[str]:
    return {name for name, pattern in STATUS_PHRASES.items() if pattern.search(body)}


def new_patient(app, clinic_row: Clinic, *, therapist: bool = False) -> tuple[int, int, int | None]:
    """A patient with nothing on file yet but a psychiatrist (and maybe a therapist) on the care team."""
    with new_session(app.extensions["glia"].engine) as s:
        team = {m.role: m.clinician_id for m in s.exec(select(CareTeamMember).where(
            CareTeamMember.clinic_id == clinic_row.id)).all()}
        p = Patient(clinic_id=clinic_row.id, mrn="NEW-1", legal_first_name="Nova", legal_last_name="Blankslate",
                    dob=date(1988, 4, 2), created_at=utcnow())
        s.add(p)
        s.flush()
        s.add(CareTeamMember(clinic_id=clinic_row.id, patient_id=p.id, clinician_id=team[ClinicianKind.psychiatrist],
                             role=ClinicianKind.psychiatrist))
        if therapist:
            s.add(CareTeamMember(clinic_id=clinic_row.id, patient_id=p.id, clinician_id=team[ClinicianKind.therapist],
                                 role=ClinicianKind.therapist))
        s.commit()
        return p.id, team[ClinicianKind.psychiatrist], team[ClinicianKind.therapist] if therapist else None


def sign_kind(app, client, patient_id, recipient_id, kind) -> str:
    extra = {"plan": "One session every four weeks, reviewed at each visit."} if kind == "maintenance" else {}
    if kind == "medication_concern":
        extra = {"requests": "Please tell us which sleep medication the patient takes."}
    return pdf_text(sign(app, client, write_letter(app, client, patient_id, recipient_id, kind=kind, **extra)))


def test_no_letter_kind_states_a_status_no_record_supports(app, client, db):
    """For a patient with no sessions, scores, consents, screening, holds or letters, every kind's
    letter states none of the statuses; a patient whose records hold them gets each one stated."""
    stillwater = clinic(db)
    patient_id, psychiatrist, _ = new_patient(app, stillwater)
    login(app, client, "clinician")
    for kind in KINDS:
        body = sign_kind(app, client, patient_id, psychiatrist, kind)
        assert statuses(body) == set(), (kind, statuses(body))
        assert "No ketamine sessions have taken place yet." in body and "No PHQ-9 on file." in body
        assert "No treatment consent on file." in body and "screening: not yet completed" in body
        if kind == "treatment_start":
            assert "We will write again when the induction series is complete." in body

    # the positive case: the demo patient with a positive item 9 was treated, consented and screened
    score = db.exec(select(OutcomeScore).join(Patient, Patient.id == OutcomeScore.patient_id).where(
        Patient.clinic_id == stillwater.id, OutcomeScore.item9 > 0, OutcomeScore.reviewed_by_id.is_(None))).one()
    psychiatrist = db.exec(select(CareTeamMember.clinician_id).where(
        CareTeamMember.patient_id == score.patient_id, CareTeamMember.role == ClinicianKind.psychiatrist)).one()
    body = sign_kind(app, client, score.patient_id, psychiatrist, "progress")
    assert statuses(body) == {"item 9 awaiting review", "consent signed", "screening completed", "induction complete"}


def test_item9_is_reviewed_only_when_a_clinician_review_is_recorded(app, client, db, fresh):
    stillwater = clinic(db)
    score = db.exec(select(OutcomeScore).join(Patient, Patient.id == OutcomeScore.patient_id).where(
        Patient.clinic_id == stillwater.id, OutcomeScore.item9 > 0, OutcomeScore.reviewed_by_id.is_(None))).one()
    taken = score.taken_at.astimezone(ZoneInfo(stillwater.timezone)).strftime("%b %d, %Y").replace(" 0", " ")
    psychiatrist = db.exec(select(CareTeamMember.clinician_id).where(
        CareTeamMember.patient_id == score.patient_id, CareTeamMember.role == ClinicianKind.psychiatrist)).one()
    login(app, client, "clinician")

    before = pdf_text(sign(app, client, write_letter(app, client, score.patient_id, psychiatrist)))
    assert f"Item 9 answered {score.item9} on {taken}: awaiting clinician review." in before
    assert "reviewed by" not in before.lower()

    # a clinician reviews it on the dashboard; the next letter names who and when, in the clinic's time zone
    assert post(app, client, f"/alerts/{score.id}/review").status_code == 302
    reviewed = fresh().get(OutcomeScore, score.id)
    assert reviewed.reviewed_by_id is not None
    reviewer = fresh().get(User, reviewed.reviewed_by_id).name
    local = reviewed.reviewed_at.astimezone(ZoneInfo(stillwater.timezone))
    when = f"{local.strftime('%b %d, %Y').replace(' 0', ' ')} at {local.strftime('%I:%M %p').lstrip('0')} {local.tzname()}"
    after = pdf_text(sign(app, client, write_letter(app, client, score.patient_id, psychiatrist)))
    assert f"Item 9 answered {score.item9} on {taken}: reviewed by {reviewer} on {when}." in after
    assert local.tzname() in ("PST", "PDT")  # Stillwater is in Oregon
    assert "awaiting clinician review" not in after


def test_esketamine_letters_speak_of_esketamine(app, client, db):
    """Text and interaction notes say esketamine; racemic ketamine appears only where the evidence is about it."""
    harbor = clinic(db, "harbor")
    patient, psychiatrist, done = treated_patient(db, "harbor", Modality.esketamine_nasal)
    with new_session(app.extensions["glia"].engine) as s:
        for name, cls in (("Lamotrigine", "anticonvulsant"), ("Naltrexone", "opioid_antagonist"), ("Clonazepam", "")):
            s.add(Medication(clinic_id=harbor.id, patient_id=patient.id, name=name, drug_class=cls, dose="25 mg",
                             frequency="daily", prescriber="Dr. Morgan Mindful (demo)", created_at=utcnow()))
        s.commit()
    login(app, client, "harbor.clinician")
    for kind in ("treatment_start", "progress", "medication_concern"):
        body = pdf_text(sign(app, client, write_letter(app, client, patient.id, psychiatrist, kind=kind)))
        bare = [m.start() for m in re.finditer(r"(?<!es)ketamine", body, re.I)]
        assert all(body[i - 8:i] == "racemic " for i in bare), (kind, [body[i - 40:i + 20] for i in bare])
        assert "esketamine treatment" in body  # the purpose line and the opening
        assert "May blunt the antidepressant response to esketamine" in body
        assert "possibly of esketamine" in body and "whether it does the same with esketamine is not known" in body
        # the series is the label's: twice weekly for 4 weeks
        assert "of the 8 esketamine sessions" in body or "Induction series complete: 8 esketamine sessions" in body
    start = pdf_text(sign(app, client, write_letter(app, client, patient.id, psychiatrist, kind="treatment_start")))
    assert "twice weekly in weeks 1-4 (56 mg on day 1" in start  # the plan pre-filled for esketamine


def test_each_kind_fits_its_moment(app, client, db, fresh):
    stillwater = clinic(db)
    login(app, client, "clinician")
    # a patient three sessions into the series: treatment start promises the next letter
    def with_sessions(condition):
        return db.exec(select(TreatmentSession.patient_id).where(
            TreatmentSession.clinic_id == stillwater.id, TreatmentSession.status == SessionStatus.discharged,
            TreatmentSession.modality == Modality.iv_ketamine).group_by(TreatmentSession.patient_id)
            .having(condition).order_by(TreatmentSession.patient_id)).first()

    three = with_sessions(func.count() == 3)
    psychiatrist = db.exec(select(CareTeamMember.clinician_id).where(
        CareTeamMember.patient_id == three, CareTeamMember.role == ClinicianKind.psychiatrist)).one()
    body = pdf_text(sign(app, client, write_letter(app, client, three, psychiatrist, kind="treatment_start")))
    assert "3 of the 6 ketamine sessions of the induction series completed" in body
    assert "We will write again when the induction series is complete." in body
    # after the series, no promise to write "when it is complete"
    patient_id = with_sessions(func.count() >= 6)
    psychiatrist = db.exec(select(CareTeamMember.clinician_id).where(
        CareTeamMember.patient_id == patient_id, CareTeamMember.role == ClinicianKind.psychiatrist)).one()
    body = pdf_text(sign(app, client, write_letter(app, client, patient_id, psychiatrist, kind="treatment_start")))
    assert "Induction series complete: 6 ketamine sessions" in body
    assert "when the induction series is complete" not in body and "during the induction series" not in body

    # a maintenance plan letter without a plan is not signed; the preview says why
    letter_id = write_letter(app, client, patient_id, psychiatrist, kind="maintenance", plan="")
    preview = client.get(f"/coordination/letters/{letter_id}/preview")
    assert "needs the plan" in preview.text and "Sign letter" not in preview.text
    docs = fresh().exec(select(func.count()).select_from(CoordinationDocument)).one()
    refused = post(app, client, f"/coordination/letters/{letter_id}/sign", {"version": version_of(app, letter_id)})
    assert refused.status_code == 422 and "needs the plan" in refused.text
    assert fresh().exec(select(func.count()).select_from(CoordinationDocument)).one() == docs
    # nor a medication concern with no flagged medication and no question
    new_id, new_psychiatrist, _ = new_patient(app, stillwater)
    concern = write_letter(app, client, new_id, new_psychiatrist, kind="medication_concern")
    refused = post(app, client, f"/coordination/letters/{concern}/sign", {"version": version_of(app, concern)})
    assert refused.status_code == 422 and "No current medication is flagged" in refused.text
    # the shipped wording never points at a plan or a series state it cannot know
    for spec in KINDS.values():
        for part in ("purpose", "opening", "requests", "therapist_requests", "closing"):
            assert not re.search(r"plan below|induction series is complete|has completed", spec[part], re.I), part


def test_requests_go_to_who_can_act_on_them(app, client, db, fresh):
    """Medication changes are asked of the prescriber; a therapist is asked what a therapist can do."""
    patient, benzo, psychiatrist = benzo_patient(db)
    therapist = db.exec(select(CareTeamMember.clinician_id).where(
        CareTeamMember.patient_id == patient.id, CareTeamMember.role == ClinicianKind.therapist)).first()
    if therapist is None:
        with new_session(app.extensions["glia"].engine) as s:
            therapist = s.exec(select(CareTeamMember.clinician_id).where(
                CareTeamMember.clinic_id == patient.clinic_id, CareTeamMember.role == ClinicianKind.therapist)).first()
            s.add(CareTeamMember(clinic_id=patient.clinic_id, patient_id=patient.id, clinician_id=therapist,
                                 role=ClinicianKind.therapist, psychotherapy_modality="CBT"))
            s.commit()
    login(app, client, "clinician")
    request = "Please consider lowering or holding the dose on treatment days"

    # a medication-concern letter goes to a prescriber only
    refused = post(app, client, f"/coordination/patients/{patient.id}/letters",
                   {"kind": "medication_concern", "recipient_id": therapist})
    assert refused.status_code == 422 and "only a prescriber can make" in refused.text

    to_therapist = pdf_text(sign(app, client, write_letter(app, client, patient.id, therapist, kind="progress")))
    assert request not in to_therapist and "Request:" not in to_therapist
    assert f"{benzo.name} (flagged)" in to_therapist and "is for the prescriber" in to_therapist
    assert "how the patient is doing in psychotherapy" in to_therapist  # what a therapist can do
    assert "We raised it with" not in to_therapist  # no letter to the prescriber yet

    to_psychiatrist = pdf_text(sign(app, client, write_letter(app, client, patient.id, psychiatrist, kind="progress")))
    assert f"{benzo.name}: {request}" in to_psychiatrist and "Please let us know of any change" in to_psychiatrist

    # once the prescriber has the request, the therapist is told so (from that signed letter)
    again = pdf_text(sign(app, client, write_letter(app, client, patient.id, therapist, kind="discharge")))
    assert "We raised it with Dr. Morgan Mindful (demo) in our letter of" in again and request not in again
    assert "Please continue psychotherapy" in again
