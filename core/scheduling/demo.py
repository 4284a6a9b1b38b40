"""Demo calendar: chairs named for trees, the week's hours, today's sessions in chairs, and an induction
series booked for each new patient (those with no sessions yet) by the planner's own checks."""
from __future__ import annotations

from datetime import datetime, time, timedelta

from sqlmodel import Session, select

from core import audit
from core.models import Clinic, Membership, Modality, Patient, Provider, Role, TreatmentSession, User, utcnow
from core.rems.models import RemsEnrollment
from core.scheduling.calendar import Calendar, minutes_of
from core.scheduling.models import Booking, Chair, CoursePlan, OpeningHours
from core.scheduling.patterns import BOOKED_MINUTES, DEFAULT
from core.scheduling.planner import Proposed, Request, check, pattern_days

CHAIRS = ("Aspen room", "Birch room", "Cedar room", "Willow room")


def seed_calendar(session: Session, clinic: Clinic) -> None:
    chairs = [Chair(clinic_id=clinic.id, name=name) for name in CHAIRS]
    session.add_all(chairs)
    weekdays = range(6) if clinic.slug == "stillwater" else range(5)
    session.add_all(OpeningHours(clinic_id=clinic.id, weekday=d, opens=time(9) if d == 5 else time(7, 30),
                                 closes=time(14) if d == 5 else time(19)) for d in weekdays)
    session.flush()
    cal = Calendar.load(session, clinic)
    start_of_today = datetime.combine(utcnow().astimezone(cal.zone).date(), time(0), tzinfo=cal.zone)
    _seat(session, cal, start_of_today)
    _plan_new_patients(session, cal)


def _seat(session: Session, cal: Calendar, since: datetime) -> None:
    """Put each session from ``since`` on into the first chair free for its whole length."""
    upcoming = session.exec(select(TreatmentSession).where(
        TreatmentSession.clinic_id == cal.clinic.id, TreatmentSession.scheduled_at >= since)
        .order_by(TreatmentSession.scheduled_at, TreatmentSession.id)).all()
    busy: dict[int, list[tuple[datetime, datetime]]] = {c.id: [] for c in cal.active_chairs()}
    for t in upcoming:
        start, end = t.scheduled_at, t.scheduled_at + timedelta(minutes=minutes_of(t, None))
        chair_id = next((c for c, spans in busy.items() if all(e <= start or end <= s for s, e in spans)), None)
        if chair_id is not None:
            busy[chair_id].append((start, end))
        session.add(Booking(treatment_id=t.id, clinic_id=cal.clinic.id, chair_id=chair_id,
                            minutes=BOOKED_MINUTES[t.modality]))
    session.flush()


def _plan_new_patients(session: Session, cal: Calendar) -> None:
    desk = session.exec(select(User).join(Membership, Membership.user_id == User.id).where(
        Membership.clinic_id == cal.clinic.id, User.role == Role.front_desk)).first()
    providers = session.exec(select(Provider).where(Provider.clinic_id == cal.clinic.id).order_by(Provider.id)).all()
    has_sessions = select(TreatmentSession.patient_id).where(TreatmentSession.clinic_id == cal.clinic.id)
    new = session.exec(select(Patient).where(Patient.clinic_id == cal.clinic.id, Patient.id.not_in(has_sessions))
                       .order_by(Patient.id)).all()
    first = cal.next_open_day(utcnow().astimezone(cal.zone).date() + timedelta(days=1))
    modality = Modality.iv_ketamine if cal.clinic.slug == "stillwater" else Modality.esketamine_nasal
    enrolled = set(session.exec(select(RemsEnrollment.patient_id).where(RemsEnrollment.clinic_id == cal.clinic.id)))
    if modality == Modality.esketamine_nasal:  # Spravato only for a patient already enrolled in the REMS
        new = [p for p in new if p.id in enrolled]
    for n, patient in enumerate(new[:3]):
        for minutes in range(0, 8 * 60, 30):  # the first time of day at which the whole series is free
            at = time(9 + minutes // 60, minutes % 60)
            for chair in cal.active_chairs():
                req = Request(patient, modality, DEFAULT[modality], providers[n % len(providers)], chair)
                proposals = [Proposed(day, at, note) for day, note in pattern_days(cal, req.pattern, first + timedelta(days=n))]
                if check(session, cal, req, proposals):
                    _book(session, cal, req, proposals, desk)
                    break
            else:
                continue
            break


def _book(session: Session, cal: Calendar, req: Request, proposals: list[Proposed], desk: User) -> None:
    plan = CoursePlan(clinic_id=cal.clinic.id, patient_id=req.patient.id, modality=req.modality, pattern=req.pattern,
                      provider_id=req.provider.id, chair_id=req.chair.id, created_by_id=desk.id, created_at=utcnow())
    session.add(plan)
    session.flush()
    for p in proposals:
        t = TreatmentSession(clinic_id=cal.clinic.id, patient_id=req.patient.id, provider_id=req.provider.id,
                             modality=req.modality, scheduled_at=cal.at(p.day, p.at),
                             escort_name=req.patient.escort_name, escort_phone=req.patient.escort_phone)
        session.add(t)
        session.flush()
        session.add(Booking(treatment_id=t.id, clinic_id=cal.clinic.id, chair_id=req.chair.id, minutes=req.minutes,
                            plan_id=plan.id))
    session.flush()
    audit.append(session, "course.plan", object_type="course_plan", object_id=plan.id, patient_id=req.patient.id,
                 clinic_id=cal.clinic.id, user_id=desk.id, detail=f"{req.pattern}: {len(proposals)} sessions (demo)")
