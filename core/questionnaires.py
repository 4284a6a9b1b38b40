"""Which PHQ-9 and GAD-7 questionnaires a patient owes before their next session, by the clinic's rule.

One function decides it, ``due_questionnaires``, so the portal's list and the "questionnaire due"
e-mail can never disagree. A questionnaire is asked before the patient's next session only (the
one they will come to next), from ``days_before`` days ahead; the clinic picks every session, or
the first and then every Nth. It is done once a score is linked to that session.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, select

from core.models import (Clinic, Instrument, OutcomeScore, Patient, QuestionnairePolicy, SessionStatus,
                         TreatmentSession, utcnow)

_DATA = json.loads((Path(__file__).resolve().parent / "data" / "questionnaires.json").read_text())
ANSWERS: list[str] = _DATA["answers"]
DEFINITIONS: dict[Instrument, dict] = {Instrument(k): v for k, v in _DATA["instruments"].items()}

INSTRUMENT_SETS = {"phq9_gad7": (Instrument.phq9, Instrument.gad7), "phq9": (Instrument.phq9,), "off": ()}
INSTRUMENT_CHOICES = {"phq9_gad7": "PHQ-9 and GAD-7", "phq9": "PHQ-9 only", "off": "None (staff enter scores)"}
RULE_CHOICES = {"every": "Before every session", "first_then_every": "Before the first session, then every N sessions"}
DEFAULT_POLICY = {"instruments": "phq9_gad7", "rule": "every", "every_n": 3, "days_before": 3}
UPCOMING = (SessionStatus.scheduled, SessionStatus.checked_in)
COUNTED = (SessionStatus.cancelled, SessionStatus.no_show)  # sessions that never happened do not count


@dataclass(frozen=True)
class Due:
    """One questionnaire owed before ``treatment``, open since ``opens`` (a date in the clinic's zone)."""

    instrument: Instrument
    treatment: TreatmentSession
    opens: object

    @property
    def kind(self) -> str:
        """The URL word for the instrument (phq9, gad7)."""
        return self.instrument.name

    @property
    def title(self) -> str:
        return DEFINITIONS[self.instrument]["title"]


def instrument_of(kind: str) -> Instrument | None:
    return Instrument.__members__.get(kind)


def policy_of(db: Session, clinic: Clinic) -> QuestionnairePolicy:
    """The clinic's rule, or the default (not added to the session) when it never chose one."""
    return db.get(QuestionnairePolicy, clinic.id) or QuestionnairePolicy(clinic_id=clinic.id, **DEFAULT_POLICY)


def today_start(clinic: Clinic, now: datetime | None = None) -> datetime:
    """Midnight of the clinic's today: a session earlier today that has not happened yet is still upcoming."""
    zone = ZoneInfo(clinic.timezone)
    return datetime.combine((now or utcnow()).astimezone(zone).date(), time(0), tzinfo=zone)


def upcoming_sessions(db: Session, clinic: Clinic, patient: Patient, now: datetime | None = None) -> list[TreatmentSession]:
    """The patient's sessions still to come (today's included), soonest first."""
    return list(db.exec(select(TreatmentSession).where(
        TreatmentSession.clinic_id == clinic.id, TreatmentSession.patient_id == patient.id,
        TreatmentSession.status.in_(UPCOMING), TreatmentSession.scheduled_at >= today_start(clinic, now))
        .order_by(TreatmentSession.scheduled_at, TreatmentSession.id)).all())


def asks_before(db: Session, policy: QuestionnairePolicy, treatment: TreatmentSession) -> bool:
    """Does the rule ask for questionnaires before this session?"""
    if policy.rule != "first_then_every":
        return True
    earlier = db.exec(select(func.count()).select_from(TreatmentSession).where(
        TreatmentSession.clinic_id == treatment.clinic_id, TreatmentSession.patient_id == treatment.patient_id,
        TreatmentSession.status.not_in(COUNTED), TreatmentSession.scheduled_at < treatment.scheduled_at)).one()
    return earlier % max(1, policy.every_n) == 0


def due_questionnaires(clinic: Clinic, patient: Patient, *, db: Session | None = None,
                       upcoming: list[TreatmentSession] | None = None, now: datetime | None = None) -> list[Due]:
    """The questionnaires ``patient`` should complete now, before their next session (empty when none)."""
    if db is None:
        from core.db import get_session

        db = get_session()
    policy = policy_of(db, clinic)
    wanted = INSTRUMENT_SETS.get(policy.instruments, ())
    if not wanted:
        return []
    upcoming = upcoming_sessions(db, clinic, patient, now) if upcoming is None else upcoming
    if not upcoming:
        return []
    nxt = upcoming[0]
    zone = ZoneInfo(clinic.timezone)
    opens = nxt.scheduled_at.astimezone(zone).date() - timedelta(days=policy.days_before)
    if (now or utcnow()).astimezone(zone).date() < opens or not asks_before(db, policy, nxt):
        return []
    done = set(db.exec(select(OutcomeScore.instrument).where(
        OutcomeScore.clinic_id == clinic.id, OutcomeScore.patient_id == patient.id,
        OutcomeScore.treatment_id == nxt.id)).all())
    return [Due(i, nxt, opens) for i in wanted if i not in done]
