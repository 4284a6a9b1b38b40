"""The clinic's outcome figures: response and remission among patients who completed induction.

Two statements for the whole clinic, however many patients: window functions pick each patient's
first session given and their Nth (the end of induction), then each patient's latest score before
and after that first session. The definitions are those of core.outcomes.measures, so the figures
and each patient's report agree (tests check it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from core import scoring
from core.models import Instrument, Modality, OutcomeScore, TreatmentSession
from core.outcomes.measures import BASELINE_WINDOW, GIVEN, INDUCTION_SESSIONS, given_at_sql


@dataclass
class Rate:
    """Responders and remitters among the patients whose change can be measured."""

    instrument: Instrument
    evaluable: int = 0
    responders: int = 0  # response or remission: at least a 50% drop, or below 5
    remitted: int = 0
    no_baseline: int = 0
    no_follow_up: int = 0

    @staticmethod
    def pct(part: int, whole: int) -> int | None:
        return round(100 * part / whole) if whole else None


@dataclass
class Figures:
    started: int = 0  # patients with at least one session given
    completed: int = 0  # of them, patients who completed the induction series
    rates: dict[Instrument, Rate] = field(default_factory=dict)
    completers: set[int] = field(default_factory=set)


def _firsts(clinic_id: int):
    """Each patient's first session given and the Nth, for every N an induction may need."""
    at = given_at_sql()
    numbered = select(TreatmentSession.patient_id, TreatmentSession.modality, at.label("at"),
                      sa.func.row_number().over(partition_by=TreatmentSession.patient_id,
                                                order_by=(TreatmentSession.scheduled_at, TreatmentSession.id)).label("n")
                      ).where(TreatmentSession.clinic_id == clinic_id, TreatmentSession.status == GIVEN).subquery()
    return numbered, sorted({1, *INDUCTION_SESSIONS.values()})


def figures(db: Session, clinic_id: int) -> Figures:
    numbered, wanted = _firsts(clinic_id)
    first: dict[int, tuple[Modality, datetime]] = {}
    nth: dict[tuple[int, int], datetime] = {}
    for patient_id, modality, at, n in db.exec(select(*numbered.c).where(numbered.c.n.in_(wanted))).all():
        if n == 1:
            first[patient_id] = (Modality(modality), at)
        nth[(patient_id, n)] = at
    out = Figures(started=len(first))
    out.completers = {p for p, (modality, _at) in first.items() if (p, INDUCTION_SESSIONS[modality]) in nth}
    out.completed = len(out.completers)

    starts = select(numbered.c.patient_id, numbered.c.at).where(numbered.c.n == 1).subquery()
    after = OutcomeScore.taken_at > starts.c.at
    ranked = select(OutcomeScore.patient_id, OutcomeScore.instrument, OutcomeScore.total, OutcomeScore.taken_at,
                    starts.c.at, after.label("after"),
                    sa.func.row_number().over(partition_by=(OutcomeScore.patient_id, OutcomeScore.instrument, after),
                                              order_by=(OutcomeScore.taken_at.desc(), OutcomeScore.id.desc())).label("r")
                    ).join(starts, starts.c.patient_id == OutcomeScore.patient_id).where(
        OutcomeScore.clinic_id == clinic_id).subquery()
    pairs: dict[tuple[int, Instrument], dict[bool, int]] = {}
    for patient_id, instrument, total, taken_at, start, is_after, _r in db.exec(select(*ranked.c).where(ranked.c.r == 1)).all():
        if patient_id not in out.completers:
            continue
        if not is_after and taken_at < start - BASELINE_WINDOW:
            continue  # too old to be a baseline, and it is the newest before treatment
        pairs.setdefault((patient_id, Instrument(instrument)), {})[bool(is_after)] = total
    for instrument in Instrument:
        rate = out.rates[instrument] = Rate(instrument)
        for patient_id in out.completers:
            pair = pairs.get((patient_id, instrument), {})
            if False not in pair:
                rate.no_baseline += 1
            elif True not in pair:
                rate.no_follow_up += 1
            else:
                rate.evaluable += 1
                status = scoring.response_status(pair[False], pair[True])
                rate.responders += status in ("response", "remission")
                rate.remitted += status == "remission"
    return out
