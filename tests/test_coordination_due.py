"""Due letters: a progress letter after the induction series, medication concerns, the chart panel."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlmodel import func, select

from core import workflow
from core.db import new_session
from core.models import (CareTeamMember, Clinic, ClinicianKind, Medication, Patient, SessionStatus, TreatmentSession,
                         utcnow)
from plugins.coordination.models import CoordinationDocument, CoordinationDue, CoordinationLetter
from tests.support import login, post


@pytest.fixture
def fresh(app):
    sessions = []

    def make():
        sessions.append(new_session(app.extensions["glia"].engine, write=False))
        return sessions[-1]

    yield make
    for s in sessions:
        s.close()


def widget(html: str) -> str:
    """The dashboard's "Letters due" card."""
    start = html.index("Letters due")
    return html[start:html.index("All letters", start)]


def sign_new_letter(app, client, patient_id, recipient_id, kind, fresh):
    resp = post(app, client, f"/coordination/patients/{patient_id}/letters", {"kind": kind, "recipient_id": recipient_id})
    assert resp.status_code == 302
    letter_id = int(re.search(r"/letters/(\d+)", resp.headers["Location"]).group(1))
    version = fresh().get(CoordinationLetter, letter_id).version
    assert post(app, client, f"/coordination/letters/{letter_id}/sign", {"version": version}).status_code == 302


def test_discharge_completing_the_induction_makes_a_progress_letter_due(app, client, db, fresh):
    stillwater = db.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
    done = (select(TreatmentSession.patient_id, func.count().label("n"))
            .where(TreatmentSession.status == SessionStatus.discharged).group_by(TreatmentSession.patient_id).subquery())
    # a patient three sessions in, with today's session checked in
    patient, today_session = db.exec(
        select(Patient, TreatmentSession).join(done, done.c.patient_id == Patient.id)
        .join(TreatmentSession, TreatmentSession.patient_id == Patient.id)
        .where(Patient.clinic_id == stillwater.id, done.c.n == 3, TreatmentSession.status == SessionStatus.checked_in)
        .order_by(Patient.id)).first()
    psychiatrist = db.exec(select(CareTeamMember.clinician_id).where(
        CareTeamMember.patient_id == patient.id, CareTeamMember.role == ClinicianKind.psychiatrist)).first()
    manager = app.test_client()
    login(app, manager, "manager")
    assert post(app, manager, "/coordination/settings", {"induction_sessions": "4"}).status_code == 302
    with new_session(app.extensions["glia"].engine) as s:  # dosing done: the session is being monitored
        t = s.get(TreatmentSession, today_session.id)
        t.status, t.started_at, t.monitoring_at, t.dose_mg = SessionStatus.monitoring, utcnow(), utcnow(), 35.0
        t.dosed_at = utcnow() - timedelta(minutes=45)  # past the 30 minutes of recovery core requires
        t.version += 1
        with workflow.importing(s):
            s.add(t)
        s.commit()
        version = t.version

    login(app, client, "clinician")
    assert patient.display_name not in widget(client.get("/").text)
    resp = post(app, client, f"/sessions/{today_session.id}/discharge",
                {"version": version, "discharge_systolic": "124", "discharge_diastolic": "80",
                 "released_to_escort": "1"})
    assert resp.status_code == 302, resp.text
    due = fresh().exec(select(CoordinationDue).where(CoordinationDue.patient_id == patient.id)).one()
    assert (due.kind, due.recipient_id, due.resolved_at) == ("progress", psychiatrist, None)

    card = widget(client.get("/").text)
    assert patient.display_name in card and "Progress letter" in card
    chart = client.get(f"/patients/{patient.id}").text
    assert "Care-coordination letters" in chart and "Progress update due" in chart

    sign_new_letter(app, client, patient.id, psychiatrist, "progress", fresh)
    assert fresh().get(CoordinationDue, due.id).resolution == "signed"
    assert patient.display_name not in widget(client.get("/").text)
    chart = client.get(f"/patients/{patient.id}").text
    assert "Progress update due" not in chart and "signed, not sent" in chart


def test_new_interacting_medication_raises_a_concern_until_written_or_dismissed(app, client, db, fresh):
    login(app, client, "clinician")
    # the demo: a patient whose letter went out before alprazolam was added
    alprazolam = db.exec(select(Medication).join(Patient, Patient.id == Medication.patient_id)
                         .join(Clinic, Clinic.id == Patient.clinic_id)
                         .where(Medication.name == "Alprazolam", Clinic.slug == "stillwater")).one()
    concern_patient = db.get(Patient, alprazolam.patient_id)
    card = widget(client.get("/").text)
    assert concern_patient.display_name in card and "Alprazolam" in card

    # another patient, already written to: a stimulant added now raises a concern too
    sent_doc = db.exec(select(CoordinationDocument).where(CoordinationDocument.clinic_id == alprazolam.clinic_id,
                                                          CoordinationDocument.kind == "progress")).first()
    with new_session(app.extensions["glia"].engine) as s:
        med = Medication(clinic_id=sent_doc.clinic_id, patient_id=sent_doc.patient_id, name="Adderall XR",
                         drug_class="", dose="20 mg", frequency="daily", created_at=utcnow())
        s.add(med)
        s.commit()
        med_id = med.id
    page = client.get(f"/coordination/patients/{sent_doc.patient_id}").text
    assert "New interacting medication: Adderall XR" in page

    assert post(app, client, f"/coordination/medications/{med_id}/dismiss").status_code == 302
    assert "Adderall XR" not in client.get(f"/coordination/patients/{sent_doc.patient_id}").text
    assert "Adderall XR" not in widget(client.get("/").text)

    # writing the medication-concern letter resolves the demo concern
    sign_new_letter(app, client, concern_patient.id, sent_doc.recipient_id, "medication_concern", fresh)
    doc = fresh().exec(select(CoordinationDocument).where(CoordinationDocument.patient_id == concern_patient.id)
                       .order_by(CoordinationDocument.id.desc())).first()
    assert alprazolam.id in doc.flagged_medication_ids
    assert "Alprazolam" not in widget(client.get("/").text)


def test_harbor_sees_only_its_own_due_letters(app, client, db):
    due = db.exec(select(Patient, Clinic.slug).join(CoordinationDue, CoordinationDue.patient_id == Patient.id)
                  .join(Clinic, Clinic.id == Patient.clinic_id).where(CoordinationDue.resolved_at.is_(None))).all()
    login(app, client, "harbor.clinician")
    card = widget(client.get("/").text)
    assert {slug for _p, slug in due} == {"stillwater", "harbor"}
    for patient, slug in due:
        assert (patient.display_name in card) == (slug == "harbor")
