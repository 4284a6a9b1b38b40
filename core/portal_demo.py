"""Demo portal: each demo patient with a portal login gets a few sessions booked ahead (checked by the
planner like any booking) and has answered the GAD-7 for the next one, so the portal shows a course
of visits with their instructions and exactly one questionnaire due: the PHQ-9."""
from __future__ import annotations

from datetime import time, timedelta

from sqlmodel import Session, select

from core import scoring
from core.models import Clinic, Instrument, OutcomeScore, Patient, Provider, TreatmentSession, utcnow
from core.questionnaires import upcoming_sessions
from core.scheduling.calendar import Calendar
from core.scheduling.models import Booking
from core.scheduling.planner import MAINTENANCE, Proposed, Request, check

AHEAD_DAYS = (4, 11, 18)  # roughly weekly visits after today's
GAD7_ANSWERS = [1, 1, 2, 1, 0, 1, 0]  # fictional: mild anxiety


def seed_portal(session: Session, clinic: Clinic) -> None:
    cal = Calendar.load(session, clinic)
    today = utcnow().astimezone(cal.zone).date()
    for patient in session.exec(select(Patient).where(Patient.clinic_id == clinic.id, Patient.user_id.is_not(None))
                                .order_by(Patient.id)).all():
        last = session.exec(select(TreatmentSession).where(
            TreatmentSession.clinic_id == clinic.id, TreatmentSession.patient_id == patient.id)
            .order_by(TreatmentSession.scheduled_at.desc())).first()
        if last is None:
            continue
        provider = session.get(Provider, last.provider_id)
        for ahead in AHEAD_DAYS:
            _book_free(session, cal, Request(patient, last.modality, MAINTENANCE, provider, None),
                       cal.next_open_day(today + timedelta(days=ahead)))
        nxt = upcoming_sessions(session, clinic, patient)
        if nxt:
            result = scoring.score(Instrument.gad7, GAD7_ANSWERS)
            session.add(OutcomeScore(clinic_id=clinic.id, patient_id=patient.id, instrument=Instrument.gad7,
                                     items=list(GAD7_ANSWERS), total=result["total"], band=result["band"],
                                     alert=False, taken_at=utcnow() - timedelta(hours=20), treatment_id=nxt[0].id))
    session.flush()


def _book_free(session: Session, cal: Calendar, req: Request, day) -> None:
    """The first half hour from 10:00 at which a chair and the provider are free that day."""
    for minutes in range(0, 6 * 60, 30):
        at = time(10 + minutes // 60, minutes % 60)
        for chair in cal.active_chairs():
            seated = Request(req.patient, req.modality, req.pattern, req.provider, chair)
            if check(session, cal, seated, [Proposed(day, at)]):
                t = TreatmentSession(clinic_id=cal.clinic.id, patient_id=req.patient.id, provider_id=req.provider.id,
                                     modality=req.modality, scheduled_at=cal.at(day, at),
                                     escort_name=req.patient.escort_name, escort_phone=req.patient.escort_phone)
                session.add(t)
                session.flush()
                session.add(Booking(treatment_id=t.id, clinic_id=cal.clinic.id, chair_id=chair.id,
                                    minutes=seated.minutes))
                return
