"""The measurement-based-care report and the clinic's outcome figures, read back as a payer or manager would."""
from __future__ import annotations

import hashlib
import io
import uuid
from datetime import date, timedelta

from pypdf import PdfReader
from sqlmodel import select

from core import scoring, workflow
from core.db import session_scope
from core.models import (AuditEvent, Clinic, Instrument, Modality, OutcomeScore, Patient, Provider, SessionStatus,
                         SideEffect, TreatmentSession, utcnow)
from core.outcomes import clinic as clinic_figures
from core.outcomes import measures
from core.outcomes.models import OutcomeReport
from tests.support import login, post


def _text(pdf: bytes) -> str:
    return " ".join(" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(pdf)).pages)


def _items(instrument: Instrument, total: int, item9: int = 0) -> list[int]:
    """Answers that add up to ``total`` (item 9 of a PHQ-9 as given)."""
    count = scoring.ITEMS[instrument]
    items = [0] * count
    if instrument == Instrument.phq9:
        items[8] = item9
    assert total <= 3 * (count - (instrument == Instrument.phq9)) + item9
    i = 0
    while sum(items) < total:
        if items[i] < 3 and not (instrument == Instrument.phq9 and i == 8):
            items[i] += 1
        i = (i + 1) % count
    return items


def _patient(app, slug="stillwater", *, sessions=6, modality=Modality.iv_ketamine, scores=(), effects=()):
    """A new patient with ``sessions`` given over the last weeks and scores at day offsets from the first.

    ``scores``: (instrument, total, days after the first session; negative is before).
    """
    with session_scope(app.extensions["glia"].engine) as s:
        clinic = s.exec(select(Clinic).where(Clinic.slug == slug)).one()
        provider = s.exec(select(Provider).where(Provider.clinic_id == clinic.id, Provider.user_id.is_not(None))).first()
        p = Patient(clinic_id=clinic.id, mrn=f"OUT-{uuid.uuid4().hex[:12]}", legal_first_name="Rowan",
                    legal_last_name="Testpatient", dob=date(1980, 5, 17), created_at=utcnow())
        s.add(p)
        s.flush()
        first = utcnow().replace(microsecond=0) - timedelta(days=40)
        with workflow.importing(s):
            for k in range(sessions):
                at = first + timedelta(days=3 * k)
                t = TreatmentSession(clinic_id=clinic.id, patient_id=p.id, provider_id=provider.id, modality=modality,
                                     status=SessionStatus.discharged, scheduled_at=at, checked_in_at=at,
                                     started_at=at + timedelta(minutes=10), dosed_at=at + timedelta(minutes=10),
                                     discharged_at=at + timedelta(minutes=100), weight_kg=70.0, dose_mg=35.0,
                                     duration_minutes=40, escort_confirmed=True)
                s.add(t)
                s.flush()
                for effect, severity in (effects if k == 1 else ()):
                    s.add(SideEffect(clinic_id=clinic.id, treatment_id=t.id, effect=effect, severity=severity,
                                     recorded_at=at + timedelta(minutes=50), resolved=True))
        for instrument, total, days in scores:
            result = scoring.score(instrument, _items(instrument, total))
            s.add(OutcomeScore(clinic_id=clinic.id, patient_id=p.id, instrument=instrument, items=_items(instrument, total),
                               total=result["total"], band=result["band"], item9=result["item9"], alert=False,
                               taken_at=first + timedelta(days=days, minutes=-30 if days <= 0 else 0)))
        return p.id, provider.display_name, provider.npi


PHQ, GAD = Instrument.phq9, Instrument.gad7
RESPONDER = [(PHQ, 24, -90), (PHQ, 20, -2), (GAD, 15, -2), (PHQ, 14, 9), (PHQ, 8, 20), (GAD, 6, 20)]


def test_signed_report_states_baseline_latest_change_status_sessions_and_side_effects(app, client, db):
    pid, signer, npi = _patient(app, scores=RESPONDER, effects=[("nausea", "moderate"), ("bp_rise", "mild")])
    login(app, client, "clinician")
    preview = client.get(f"/patients/{pid}/outcomes")
    assert preview.status_code == 200 and "Sign and save the PDF" in preview.get_data(as_text=True)
    resp = post(app, client, f"/patients/{pid}/outcomes",
                {"purpose": "re_authorization", "statement": "Requesting four maintenance sessions."})
    assert resp.status_code == 302
    report = db.exec(select(OutcomeReport).where(OutcomeReport.patient_id == pid)).one()
    pdf = client.get(f"/outcomes/reports/{report.id}.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert hashlib.sha256(pdf.data).hexdigest() == report.sha256
    text = _text(pdf.data)
    # the 24 taken 90 days before is outside the baseline window: the baseline is the 20, two days before
    assert "PHQ-9 20 (Severe)" in text and "8 (Mild)" in text and "-12 (-60%) Response" in text
    assert "GAD-7 15 (Severe)" in text and "6 (Mild)" in text and "-9 (-60%) Response" in text
    assert "6 sessions given" in text and "6 IV ketamine infusion" in text and "Induction series completed" in text
    assert "Nausea Moderate Yes" in text and "Blood pressure rise Mild" in text
    assert "the latest score in the 60 days before the first session given" in text
    assert "Re-authorization of treatment" in text and "Requesting four maintenance sessions." in text
    assert f"Electronically signed by {signer}, NPI {npi}" in text
    assert "Rowan Testpatient, date of birth 05/17/1980" in text
    assert report.summary["PHQ-9"] == {"baseline": 20, "latest": 8, "status": "response"}
    signed = db.exec(select(AuditEvent).where(AuditEvent.action == "outcome_report.signed",
                                              AuditEvent.object_id == str(report.id))).all()
    assert len(signed) == 1 and signed[0].patient_id == pid


def test_a_signed_report_never_changes_when_the_chart_does(app, client, db):
    pid, _signer, _npi = _patient(app, scores=RESPONDER)
    login(app, client, "clinician")
    post(app, client, f"/patients/{pid}/outcomes", {"purpose": "appeal", "statement": ""})
    report = db.exec(select(OutcomeReport).where(OutcomeReport.patient_id == pid)).one()
    before = client.get(f"/outcomes/reports/{report.id}.pdf").data
    with session_scope(app.extensions["glia"].engine) as s:  # a later, worse score
        row = s.exec(select(OutcomeScore).where(OutcomeScore.patient_id == pid, OutcomeScore.total == 8)).one()
        s.add(OutcomeScore(clinic_id=row.clinic_id, patient_id=pid, instrument=PHQ, items=_items(PHQ, 19), total=19,
                           band="Moderately severe", taken_at=utcnow()))
    assert client.get(f"/outcomes/reports/{report.id}.pdf").data == before
    preview = client.get(f"/patients/{pid}/outcomes").get_data(as_text=True)
    assert "19 (Moderately severe)" in preview and "No response yet" in preview


def test_missing_baseline_or_follow_up_is_said_not_guessed(app, client):
    pid, _s, _n = _patient(app, scores=[(PHQ, 22, -120), (PHQ, 9, 10), (GAD, 12, -1)])
    login(app, client, "clinician")
    page = client.get(f"/patients/{pid}/outcomes").get_data(as_text=True)
    assert "No PHQ-9 was recorded in the 60 days before the first session." in page
    assert "No GAD-7 has been recorded since the first session." in page
    assert "Response</td>" not in page and "Remission</td>" not in page


def test_signing_refused_without_a_provider_record_or_scores_and_bad_purpose_is_422(app, client, db):
    pid, _s, _n = _patient(app, scores=RESPONDER)
    bare, _s2, _n2 = _patient(app, sessions=2)
    login(app, client, "manager")  # no provider record: may read, not sign
    page = client.get(f"/patients/{pid}/outcomes")
    assert page.status_code == 200 and "Only a clinician with a provider record" in page.get_data(as_text=True)
    refused = post(app, client, f"/patients/{pid}/outcomes", {"purpose": "appeal"})
    assert refused.status_code == 422 and "active provider record" in refused.get_data(as_text=True)
    post(app, client, "/logout")
    login(app, client, "clinician")
    empty = post(app, client, f"/patients/{bare}/outcomes", {"purpose": "appeal"})
    assert empty.status_code == 422 and "no PHQ-9 or GAD-7 scores" in empty.get_data(as_text=True)
    bad = post(app, client, f"/patients/{pid}/outcomes", {"purpose": "marketing", "statement": "x" * 2001})
    body = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "Choose a purpose." in body and 'aria-describedby="h-statement e-statement"' in body
    assert db.exec(select(OutcomeReport).where(OutcomeReport.patient_id.in_([pid, bare]))).all() == []


def test_front_desk_other_clinics_and_patients_get_nothing(app, client, db):
    pid, _s, _n = _patient(app, scores=RESPONDER)
    login(app, client, "clinician")
    post(app, client, f"/patients/{pid}/outcomes", {"purpose": "appeal"})
    report = db.exec(select(OutcomeReport).where(OutcomeReport.patient_id == pid)).one()
    post(app, client, "/logout")
    login(app, client, "harbor.clinician")
    assert client.get(f"/patients/{pid}/outcomes").status_code == 404
    assert client.get(f"/outcomes/reports/{report.id}.pdf").status_code == 404
    post(app, client, "/logout")
    login(app, client, "frontdesk")
    assert client.get(f"/outcomes/reports/{report.id}.pdf").status_code == 403
    assert client.get("/outcomes").status_code == 403
    post(app, client, "/logout")
    login(app, client, "patient")
    assert client.get(f"/outcomes/reports/{report.id}.pdf").status_code == 403


def test_clinic_figures_count_completers_and_agree_with_each_patients_report(app, client, db):
    clinic = db.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
    before = clinic_figures.figures(db, clinic.id)
    _patient(app, scores=RESPONDER)  # completed induction, response
    _patient(app, scores=[(PHQ, 16, -1), (PHQ, 4, 15)])  # completed, remission
    _patient(app, scores=[(PHQ, 16, -1), (PHQ, 12, 15)])  # completed, no response
    _patient(app, sessions=3, scores=[(PHQ, 16, -1), (PHQ, 2, 6)])  # still in induction: not counted
    _patient(app, modality=Modality.esketamine_nasal, scores=[(PHQ, 18, -1), (PHQ, 3, 15)])  # 6 of 8 Spravato: not yet
    db.rollback()  # a fresh snapshot, after the rows above were committed
    after = clinic_figures.figures(db, clinic.id)
    phq, was = after.rates[PHQ], before.rates[PHQ]
    assert after.started - before.started == 5 and after.completed - before.completed == 3
    assert (phq.evaluable - was.evaluable, phq.responders - was.responders, phq.remitted - was.remitted) == (3, 2, 1)
    # every completer's own report says the same as the clinic's figures
    statuses = []
    for patient_id in after.completers:
        m = measures.course(db, clinic.id, patient_id).measures[PHQ]
        statuses.append(m.status or "none")
    assert sum(s in ("response", "remission") for s in statuses) == phq.responders
    assert statuses.count("remission") == phq.remitted
    assert len(statuses) - statuses.count("none") == phq.evaluable

    login(app, client, "manager")
    page = client.get("/outcomes").get_data(as_text=True)
    assert f"{phq.responders} of {phq.evaluable} patients" in page and f"{phq.remitted} of {phq.evaluable} patients" in page
    assert f"<dd>{after.completed}</dd>" in page
    harbor = db.exec(select(Clinic).where(Clinic.slug == "harbor")).one()
    assert clinic_figures.figures(db, harbor.id).completers.isdisjoint(after.completers)


def test_chart_pill_uses_the_reports_baseline(app, client):
    # first-ever PHQ-9 (24, long before) to latest (12) would be a "response"; the baseline (20) says not
    pid, _s, _n = _patient(app, scores=[(PHQ, 24, -200), (PHQ, 20, -1), (PHQ, 12, 15)])
    login(app, client, "clinician")
    page = client.get(f"/patients/{pid}").get_data(as_text=True)
    assert "PHQ-9: no response yet" in page and 'href="/patients/%d/outcomes"' % pid in page
