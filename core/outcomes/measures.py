"""A patient's course in numbers: baseline and latest scores, change, response, sessions and side effects.

Both the signed report and the clinic's figures read these definitions, so a patient counted as a
responder on the outcomes page is a responder on their report too. The rules (baseline window,
induction length) are data: core/data/outcome_rules.json.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import Session, func, select

from core import scoring
from core.models import Instrument, Modality, OutcomeScore, SessionStatus, SideEffect, TreatmentSession

RULES = json.loads((Path(__file__).resolve().parent.parent / "data" / "outcome_rules.json").read_text())
BASELINE_WINDOW = timedelta(days=RULES["baseline_window_days"])
INDUCTION_SESSIONS = {Modality(k): v for k, v in RULES["induction_sessions"].items()}
GIVEN = SessionStatus.discharged  # a session given to its end: dosed, monitored and discharged


def given_at(t: TreatmentSession) -> datetime:
    """When treatment began: the dose if recorded, else the session's start."""
    return t.dosed_at or t.started_at or t.scheduled_at


def given_at_sql():
    """given_at as a SQL expression, for statements that pick sessions in the database."""
    return func.coalesce(TreatmentSession.dosed_at, TreatmentSession.started_at, TreatmentSession.scheduled_at)


@dataclass
class Measure:
    """One instrument's baseline and latest score, and what the change means."""

    instrument: Instrument
    baseline: OutcomeScore | None = None
    latest: OutcomeScore | None = None
    missing: str = ""  # why there is no change to report, in words for the reader

    @property
    def change(self) -> int | None:
        return self.latest.total - self.baseline.total if self.baseline and self.latest else None

    @property
    def percent(self) -> int | None:
        if self.change is None or not self.baseline.total:
            return None
        return round(100 * self.change / self.baseline.total)

    @property
    def status(self) -> str:
        """remission, response, no response yet, or "" when there is nothing to compare."""
        if not (self.baseline and self.latest):
            return ""
        return scoring.response_status(self.baseline.total, self.latest.total)


def measure(instrument: Instrument, scores: list[OutcomeScore], first_given: datetime | None) -> Measure:
    """Baseline: the latest score before the first session given, within the window; latest: the newest after it.

    ``scores`` are one patient's, oldest first.
    """
    rows = [s for s in scores if s.instrument == instrument]
    m = Measure(instrument)
    if first_given is None:
        m.missing = "No session has been given yet."
        return m
    before = [s for s in rows if first_given - BASELINE_WINDOW <= s.taken_at <= first_given]
    after = [s for s in rows if s.taken_at > first_given]
    m.baseline = before[-1] if before else None
    m.latest = after[-1] if after else None
    if m.baseline is None:
        m.missing = (f"No {instrument.value} was recorded in the {BASELINE_WINDOW.days} days before the first session.")
    elif m.latest is None:
        m.missing = f"No {instrument.value} has been recorded since the first session."
    return m


def induction_complete(given: list[TreatmentSession]) -> datetime | None:
    """When the induction series was completed (the Nth session given), or None.

    N is the usual induction length of the modality the course began with.
    """
    if not given:
        return None
    needed = INDUCTION_SESSIONS[given[0].modality]
    return given_at(given[needed - 1]) if len(given) >= needed else None


@dataclass
class Course:
    """What the record says about one patient's treatment, for their report."""

    given: list[TreatmentSession]
    scores: list[OutcomeScore]
    side_effects: list[tuple[SideEffect, TreatmentSession]]
    measures: dict[Instrument, Measure] = field(default_factory=dict)

    @property
    def first_given(self) -> datetime | None:
        return given_at(self.given[0]) if self.given else None

    @property
    def induction_completed(self) -> datetime | None:
        return induction_complete(self.given)

    @property
    def by_modality(self) -> list[tuple[Modality, int]]:
        counts: dict[Modality, int] = {}
        for t in self.given:
            counts[t.modality] = counts.get(t.modality, 0) + 1
        return sorted(counts.items(), key=lambda kv: -kv[1])


def course(db: Session, clinic_id: int, patient_id: int) -> Course:
    """One patient's given sessions, scores and side effects: three queries, whatever the history."""
    given = db.exec(select(TreatmentSession).where(
        TreatmentSession.clinic_id == clinic_id, TreatmentSession.patient_id == patient_id,
        TreatmentSession.status == GIVEN).order_by(TreatmentSession.scheduled_at, TreatmentSession.id)).all()
    scores = db.exec(select(OutcomeScore).where(
        OutcomeScore.clinic_id == clinic_id, OutcomeScore.patient_id == patient_id)
        .order_by(OutcomeScore.taken_at, OutcomeScore.id)).all()
    effects = db.exec(select(SideEffect, TreatmentSession).join(TreatmentSession, TreatmentSession.id == SideEffect.treatment_id)
                      .where(SideEffect.clinic_id == clinic_id, TreatmentSession.clinic_id == clinic_id,
                             TreatmentSession.patient_id == patient_id)
                      .order_by(SideEffect.recorded_at, SideEffect.id)).all()
    c = Course(list(given), list(scores), [tuple(row) for row in effects])
    c.measures = {i: measure(i, c.scores, c.first_given) for i in Instrument}
    return c
