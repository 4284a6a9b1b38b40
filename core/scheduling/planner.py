"""Planning a course: propose dates by pattern, check each, book them all at once or none.

A proposal is only advice: the booking step checks every session again while holding the
patient, provider and chair rows (FOR UPDATE on PostgreSQL; SQLite's write transaction is already
exclusive), so two desks booking the same chair at the same moment cannot both succeed.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time, timedelta

from sqlmodel import Session, select

from core import audit
from core.mail import send_confirmation, send_session_change
from core.models import Modality, Patient, Provider, TreatmentSession, utcnow
from core.scheduling.calendar import INACTIVE, Calendar, Slot, booked_between, clashes
from core.scheduling.models import Booking, Chair, CoursePlan
from core.scheduling.patterns import BOOKED_MINUTES, MIN_DAYS_APART, PATTERNS

MAINTENANCE = "maintenance"


@dataclass
class Proposed:
    """One session of a proposal, with why it cannot be booked as it stands (if it cannot)."""

    day: date
    at: time
    note: str = ""  # e.g. "moved from Mon Jan 19 (the clinic is closed for Martin Luther King Jr. Day)"
    problem: str | None = None


@dataclass(frozen=True)
class Request:
    """What the front desk asked for: the same for every session of the plan."""

    patient: Patient
    modality: Modality
    pattern: str
    provider: Provider
    chair: Chair | None
    interval_weeks: int | None = None

    @property
    def minutes(self) -> int:
        return BOOKED_MINUTES[self.modality]


def pattern_days(cal: Calendar, pattern: str, first: date) -> list[tuple[date, str]]:
    """The pattern's days from ``first``; a closed day moves to the next open one, and the days after
    it keep at least MIN_DAYS_APART from it."""
    days: list[tuple[date, str]] = []
    for offset in PATTERNS[pattern].offsets:
        target = first + timedelta(days=offset)
        if days and target < days[-1][0] + timedelta(days=MIN_DAYS_APART):
            target = days[-1][0] + timedelta(days=MIN_DAYS_APART)
        day = cal.next_open_day(target)
        note = f"moved from {target:%a %b %d} ({cal.closed_reason(target)})" if day != target else ""
        days.append((day, note))
    return days


def check(db: Session, cal: Calendar, req: Request, proposals: list[Proposed], *, ignore: int | None = None) -> bool:
    """Set each proposal's problem (hours, closures, the past, a clash); True when all can be booked."""
    if not proposals:
        return False
    now = utcnow()
    slots = [Slot(cal.at(p.day, p.at), req.minutes, req.patient.id, req.provider.id,
                  req.chair.id if req.chair else None, ignore) for p in proposals]
    booked = booked_between(db, cal, min(s.start for s in slots), max(s.end for s in slots))
    for proposal, slot in zip(proposals, slots):
        proposal.problem = None
        if slot.start < now:
            proposal.problem = "this time has passed"
        else:
            proposal.problem = cal.hours_problem(proposal.day, proposal.at, req.minutes) or clashes(slot, booked, cal)
    for i, (a, b) in enumerate(zip(slots, slots[1:]), start=1):
        if proposals[i].problem is None and a.start.astimezone(cal.zone).date() >= b.start.astimezone(cal.zone).date():
            proposals[i].problem = "comes on or before the session above it; keep the sessions in date order"
    return all(p.problem is None for p in proposals)


def propose_course(db: Session, cal: Calendar, req: Request, first: date, at: time) -> list[Proposed]:
    proposals = [Proposed(day, at, note) for day, note in pattern_days(cal, req.pattern, first)]
    check(db, cal, req, proposals)
    return proposals


def last_session(db: Session, cal: Calendar, patient_id: int) -> TreatmentSession | None:
    return db.exec(select(TreatmentSession).where(
        TreatmentSession.clinic_id == cal.clinic.id, TreatmentSession.patient_id == patient_id,
        TreatmentSession.status.not_in(INACTIVE)).order_by(TreatmentSession.scheduled_at.desc()).limit(1)).first()


def propose_next(db: Session, cal: Calendar, req: Request, at: time) -> list[Proposed]:
    """Maintenance: the next session ``interval_weeks`` after the patient's latest (or from today)."""
    last = last_session(db, cal, req.patient.id)
    today = utcnow().astimezone(cal.zone).date()
    base = last.scheduled_at.astimezone(cal.zone).date() if last else today
    target = max(base + timedelta(weeks=req.interval_weeks or 0), today)
    day = cal.next_open_day(target)
    since = f"{req.interval_weeks} weeks after {base:%b %d}" if last else "no earlier session"
    note = f"{since}; moved from {target:%a %b %d} ({cal.closed_reason(target)})" if day != target else since
    proposals = [Proposed(day, at, note)]
    check(db, cal, req, proposals)
    return proposals


def hold(db: Session, req: Request) -> None:
    """Lock the rows every clash check of this booking depends on, until the transaction ends."""
    db.exec(select(Patient.id).where(Patient.id == req.patient.id).with_for_update()).all()
    db.exec(select(Provider.id).where(Provider.id == req.provider.id).with_for_update()).all()
    if req.chair is not None:
        db.exec(select(Chair.id).where(Chair.id == req.chair.id).with_for_update()).all()


def book(db: Session, cal: Calendar, req: Request, proposals: list[Proposed], user_id: int) -> list[TreatmentSession]:
    """Book every proposal, or none: returns [] (with each proposal's problem set) if any clashes."""
    hold(db, req)
    if not check(db, cal, req, proposals):
        return []
    plan = CoursePlan(clinic_id=cal.clinic.id, patient_id=req.patient.id, modality=req.modality, pattern=req.pattern,
                      interval_weeks=req.interval_weeks, provider_id=req.provider.id,
                      chair_id=req.chair.id if req.chair else None, created_by_id=user_id, created_at=utcnow())
    db.add(plan)
    db.flush()
    booked = []
    for p in proposals:
        t = TreatmentSession(clinic_id=cal.clinic.id, patient_id=req.patient.id, provider_id=req.provider.id,
                             modality=req.modality, scheduled_at=cal.at(p.day, p.at),
                             escort_name=req.patient.escort_name, escort_phone=req.patient.escort_phone)
        db.add(t)
        db.flush()
        db.add(Booking(treatment_id=t.id, clinic_id=cal.clinic.id, chair_id=plan.chair_id, minutes=req.minutes,
                       plan_id=plan.id))
        audit.record("session.schedule", object_type="treatment_session", object_id=t.id, patient_id=req.patient.id,
                     detail=f"plan {plan.id}")
        booked.append(t)
    audit.record("course.plan", object_type="course_plan", object_id=plan.id, patient_id=req.patient.id,
                 detail=f"{req.pattern}: {len(booked)} sessions")
    send_confirmation(db, cal.clinic, req.patient, booked)  # one message, every session in its .ics
    return booked


def move(db: Session, cal: Calendar, t: TreatmentSession, booking: Booking | None, req: Request,
         proposal: Proposed) -> bool:
    """Move one session (to another day, time, chair or provider) if nothing is in the way."""
    hold(db, req)
    if not check(db, cal, req, [proposal], ignore=t.id):
        return False
    t.scheduled_at = cal.at(proposal.day, proposal.at)
    t.provider_id = req.provider.id
    t.version += 1
    if booking is None:
        booking = Booking(treatment_id=t.id, clinic_id=cal.clinic.id, minutes=req.minutes)
    booking.chair_id = req.chair.id if req.chair else None
    db.add_all([t, booking])
    audit.record("session.move", object_type="treatment_session", object_id=t.id, patient_id=t.patient_id,
                 detail=f"to {t.scheduled_at:%Y-%m-%d %H:%M} UTC")
    send_session_change(db, cal.clinic, req.patient, t)  # the new time, replacing the calendar's event
    return True


def in_the_way(db: Session, cal: Calendar, req: Request, start) -> str | None:
    """For the chart's single "Schedule a session" form: the session in the way of this one, if any.

    Hours are not enforced there (a same-day walk-in may be squeezed in), but double booking is."""
    hold(db, req)
    slot = Slot(start, req.minutes, req.patient.id, req.provider.id, req.chair.id if req.chair else None)
    return clashes(slot, booked_between(db, cal, slot.start, slot.end), cal)
