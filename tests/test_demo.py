"""The demo a medical director would sign off: everyone treated had consented and been screened first,
past sessions follow the label and the clinic's limits, and only a handful of today's patients are
held by the gate, each for a different reason."""
from __future__ import annotations

from sqlmodel import select

from core import demo, workflow
from core.db import session_scope
from core.models import Clinic, Modality, Patient, SessionStatus, TreatmentSession
from core.rems import monitoring
from core.rems.enrollment import current_enrollments
from plugins.consent import service
from plugins.consent.models import Screening, SignedConsent

S = SessionStatus


def test_everyone_treated_signed_and_was_screened_before_the_first_session(app, db):
    with app.app_context():
        for clinic in db.exec(select(Clinic)).all():
            values = service.settings(db, clinic)
            done = db.exec(select(TreatmentSession).where(TreatmentSession.clinic_id == clinic.id,
                                                          TreatmentSession.status == S.discharged)).all()
            first: dict[int, TreatmentSession] = {}
            for t in sorted(done, key=lambda t: t.started_at):
                first.setdefault(t.patient_id, t)
            assert len(first) >= 15
            for pid, t in first.items():
                signed = {c.kind: c.signed_at for c in db.exec(select(SignedConsent).where(SignedConsent.patient_id == pid))}
                for kind in service.required_kinds(values, t.modality.value):
                    assert kind in signed and signed[kind] < t.started_at, (clinic.slug, pid, kind)
                screened = db.exec(select(Screening.answered_at).where(Screening.patient_id == pid)
                                   .order_by(Screening.answered_at)).first()
                assert screened is not None and screened < t.started_at


def test_past_sessions_follow_the_label_and_the_clinic_limits(app, db):
    sessions = db.exec(select(TreatmentSession).where(TreatmentSession.status == S.discharged)
                       .order_by(TreatmentSession.patient_id, TreatmentSession.started_at)).all()
    seen: set[int] = set()
    for t in sessions:
        assert t.discharge_ready_by_id is not None and t.dosed_at is not None
        observed = (t.discharged_at - t.dosed_at).total_seconds() / 60
        if t.modality == Modality.esketamine_nasal:
            assert t.dose_mg in (56, 84) and t.lot_number and observed >= 120
            if t.patient_id not in seen:
                assert t.dose_mg == 56  # day 1 of induction
        elif t.modality in (Modality.iv_ketamine, Modality.im_ketamine):
            assert t.weight_kg and 0.5 <= round(t.dose_mg / t.weight_kg, 2) <= 1.0
            assert observed >= 30
        seen.add(t.patient_id)


def test_only_a_handful_are_held_today_each_for_a_different_reason(app, db):
    words = {"missing_consent": "Financial", "absolute_contraindication": "Absolute contraindication",
             "high_blood_pressure": "172/104", "no_rems_enrollment": "REMS"}
    held = {}
    with app.app_context(), session_scope(app.extensions["glia"].engine, write=False) as s:
        for clinic in s.exec(select(Clinic)).all():
            today = s.exec(select(TreatmentSession).where(TreatmentSession.clinic_id == clinic.id,
                                                          TreatmentSession.status.in_([S.scheduled, S.checked_in]))).all()
            for t in today:
                patient = s.get(Patient, t.patient_id)
                reasons = workflow.start_reasons(s, clinic, patient, t)
                if reasons:
                    held[(clinic.slug, patient.mrn)] = [r.reason for r in reasons]
    expected = {(slug, mrn): reason for slug, reasons in demo.HELD.items() for reason, n in reasons.items()
                for mrn in [f"{slug[:2].upper()}{1000 + n}"]}
    assert set(held) == set(expected), held
    for key, reasons in held.items():
        assert len(reasons) == 1 and words[expected[key]].lower() in reasons[0].lower(), (key, reasons)


def test_rems_is_kept_up_to_date(app, db):
    with app.app_context():
        harbor = db.exec(select(Clinic).where(Clinic.slug == "harbor")).one()
        assert harbor.rems_setting_id
        due = monitoring.due_forms(db, harbor)
        assert due and not [d for d in due if d.overdue]  # the last few days' forms wait; none is late
        spravato = {t.patient_id for t in db.exec(select(TreatmentSession).where(
            TreatmentSession.clinic_id == harbor.id, TreatmentSession.modality == Modality.esketamine_nasal))}
        enrolled = set(current_enrollments(db, harbor.id, list(spravato)))
        missing = {db.get(Patient, pid).mrn for pid in spravato - enrolled}
        assert missing == {demo.held(harbor, "no_rems_enrollment")}
