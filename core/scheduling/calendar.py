"""The clinic's calendar: when it treats, and what is already booked in a stretch of days.

Every check names what is in the way in words the front desk can act on ("Aspen is taken:
10:00-12:30, Rowan Test, IV ketamine infusion"), so a refused booking says which session to move.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from core.models import Clinic, Patient, Provider, SessionStatus, TreatmentSession
from core.scheduling.models import Booking, Chair, ClinicClosure, OpeningHours
from core.scheduling.patterns import BOOKED_MINUTES, LONGEST_BOOKING, PROVIDER_MINUTES

# Until a clinic saves its own hours it is open Monday to Friday, 08:00-18:00.
DEFAULT_HOURS = {weekday: (time(8), time(18)) for weekday in range(5)}
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
INACTIVE = (SessionStatus.cancelled, SessionStatus.no_show)


@lru_cache(maxsize=8)
def _federal(year: int) -> dict:
    import holidays

    return dict(holidays.US(years=year))


def federal_holiday(day: date) -> str | None:
    return _federal(day.year).get(day)


def minutes_of(t: TreatmentSession, booking: Booking | None) -> int:
    return booking.minutes if booking is not None else BOOKED_MINUTES[t.modality]


@dataclass
class Calendar:
    clinic: Clinic
    hours: dict[int, tuple[time, time]]
    closures: dict[date, str]
    chairs: dict[int, Chair]

    @classmethod
    def load(cls, db: Session, clinic: Clinic) -> Calendar:
        rows = db.exec(select(OpeningHours).where(OpeningHours.clinic_id == clinic.id)).all()
        hours = {r.weekday: (r.opens, r.closes) for r in rows} if rows else dict(DEFAULT_HOURS)
        closures = {c.day: c.reason for c in db.exec(select(ClinicClosure).where(ClinicClosure.clinic_id == clinic.id))}
        chairs = {c.id: c for c in db.exec(select(Chair).where(Chair.clinic_id == clinic.id).order_by(Chair.name))}
        return cls(clinic, hours, closures, chairs)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.clinic.timezone)

    def at(self, day: date, at: time) -> datetime:
        return datetime.combine(day, at, tzinfo=self.zone)

    def active_chairs(self) -> list[Chair]:
        return [c for c in self.chairs.values() if c.active]

    def closed_reason(self, day: date) -> str | None:
        """Why the clinic does not treat on ``day``, or None when it is open."""
        if day in self.closures:
            return f"the clinic is closed ({self.closures[day]})"
        if self.clinic.closed_on_federal_holidays and (name := federal_holiday(day)):
            return f"the clinic is closed for {name}"
        if day.weekday() not in self.hours:
            return f"the clinic is closed on {WEEKDAYS[day.weekday()]}s"
        return None

    def hours_problem(self, day: date, at: time, minutes: int) -> str | None:
        """A session starting at ``at`` must also end (monitoring and recovery included) by closing."""
        if reason := self.closed_reason(day):
            return reason
        opens, closes = self.hours[day.weekday()]
        end = (datetime.combine(day, at) + timedelta(minutes=minutes)).time()
        if at < opens or end > closes or end < at:
            return (f"outside opening hours ({opens:%H:%M}-{closes:%H:%M}); a {minutes}-minute booking "
                    f"from {at:%H:%M} would end at {end:%H:%M}")
        return None

    def next_open_day(self, day: date) -> date:
        for step in range(60):
            if self.closed_reason(day + timedelta(days=step)) is None:
                return day + timedelta(days=step)
        raise ValueError("the clinic is closed for the next 60 days; check its hours and closures")


@dataclass
class Slot:
    """A session that would be booked: who, where, when, for how long."""

    start: datetime
    minutes: int
    patient_id: int
    provider_id: int
    chair_id: int | None
    ignore: int | None = None  # the session being moved does not clash with itself

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.minutes)


@dataclass
class Booked:
    treatment: TreatmentSession
    booking: Booking | None
    patient: Patient
    provider: Provider | None
    chair: Chair | None = field(default=None)

    @property
    def start(self) -> datetime:
        return self.treatment.scheduled_at

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=minutes_of(self.treatment, self.booking))

    def describe(self, zone: ZoneInfo) -> str:
        start, end = self.start.astimezone(zone), self.end.astimezone(zone)
        return (f"{start:%a %b %d} {start:%H:%M}-{end:%H:%M}, {self.patient.display_name}, "
                f"{self.treatment.modality.label}")


def booked_between(db: Session, cal: Calendar, lo: datetime, hi: datetime) -> list[Booked]:
    """Every live session of the clinic that overlaps [lo, hi), with its booking, patient and provider."""
    rows = db.exec(
        select(TreatmentSession, Booking, Patient, Provider)
        .join(Patient, Patient.id == TreatmentSession.patient_id)
        .outerjoin(Booking, Booking.treatment_id == TreatmentSession.id)
        .outerjoin(Provider, Provider.id == TreatmentSession.provider_id)
        .where(TreatmentSession.clinic_id == cal.clinic.id, Patient.clinic_id == cal.clinic.id,
               TreatmentSession.status.not_in(INACTIVE),
               TreatmentSession.scheduled_at >= lo - timedelta(minutes=LONGEST_BOOKING),
               TreatmentSession.scheduled_at < hi)
        .order_by(TreatmentSession.scheduled_at, TreatmentSession.id)).all()
    found = [Booked(t, b, p, pr, cal.chairs.get(b.chair_id) if b is not None else None) for t, b, p, pr in rows]
    return [b for b in found if b.end > lo]


def clashes(slot: Slot, booked: list[Booked], cal: Calendar) -> str | None:
    """The first session in the way of ``slot``, named, or None."""
    zone = cal.zone
    day = slot.start.astimezone(zone).date()
    provider_end = slot.start + timedelta(minutes=PROVIDER_MINUTES)
    for other in booked:
        if other.treatment.id == slot.ignore:
            continue
        if other.treatment.patient_id == slot.patient_id and other.start.astimezone(zone).date() == day:
            return f"the patient already has a session that day: {other.describe(zone)}"
        overlaps = other.start < slot.end and slot.start < other.end
        if slot.chair_id is not None and other.booking is not None and other.booking.chair_id == slot.chair_id \
                and overlaps:
            return f"{cal.chairs[slot.chair_id].name} is taken: {other.describe(zone)}"
        other_provider_end = other.start + timedelta(minutes=PROVIDER_MINUTES)
        if other.treatment.provider_id == slot.provider_id and other.start < provider_end \
                and slot.start < other_provider_end:
            who = other.provider.display_name if other.provider else "The provider"
            return (f"{who} is with another patient (each start takes them {PROVIDER_MINUTES} minutes): "
                    f"{other.describe(zone)}")
    return None
