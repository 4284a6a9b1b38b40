"""The treatment-session state machine.

scheduled → checked_in → in_progress → monitoring → discharged, and cancelled / no_show from
scheduled or checked_in. Status only moves forward. Every change bumps
TreatmentSession.version; a form carries the version it was rendered with, so a stale or
repeated submission is refused (HTTP 409) instead of silently writing twice.
"""
from __future__ import annotations

from sqlmodel import Session, select

from core import hooks
from core.models import SessionStatus as S
from core.models import TreatmentSession, VitalPhase, VitalSign, utcnow
from core.slots import Blocker

ALLOWED = {
    S.scheduled: {S.checked_in, S.cancelled, S.no_show},
    S.checked_in: {S.in_progress, S.cancelled, S.no_show},
    S.in_progress: {S.monitoring},
    S.monitoring: {S.discharged},
    S.discharged: set(),
    S.cancelled: set(),
    S.no_show: set(),
}
# the timestamp column each status stamps when it is reached
STAMP = {S.checked_in: "checked_in_at", S.in_progress: "started_at", S.monitoring: "monitoring_at",
         S.discharged: "discharged_at", S.cancelled: "ended_at", S.no_show: "ended_at"}
STEP_LABEL = {S.checked_in: "check in", S.in_progress: "start", S.monitoring: "move to monitoring",
              S.discharged: "discharge", S.cancelled: "cancel", S.no_show: "mark as no-show"}


class Conflict(Exception):
    """The session changed since the form was shown, or the step is not allowed from here."""


def can_move(t: TreatmentSession, to: S) -> bool:
    return to in ALLOWED[t.status]


def lock(session: Session, clinic_id: int, treatment_id: int) -> TreatmentSession | None:
    """Load the session row for change, locked on PostgreSQL (SQLite's BEGIN IMMEDIATE serializes)."""
    return session.exec(
        select(TreatmentSession)
        .where(TreatmentSession.id == treatment_id, TreatmentSession.clinic_id == clinic_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def check_version(t: TreatmentSession, submitted: str | int | None) -> None:
    try:
        version = int(submitted)
    except (TypeError, ValueError):
        version = -1
    if version != t.version:
        raise Conflict("This session was changed since you opened the page (perhaps by someone else, "
                       "or the form was sent twice). Nothing was saved; review the session and try again.")


def require(t: TreatmentSession, to: S, submitted_version) -> None:
    """Raise Conflict unless the form is current and ``to`` is a forward step from here."""
    check_version(t, submitted_version)
    if not can_move(t, to):
        raise Conflict(f"A session that is {t.status.value.replace('_', ' ')} cannot {STEP_LABEL[to]}. "
                       "Nothing was saved.")


def move(session: Session, t: TreatmentSession, to: S, submitted_version, **fields) -> TreatmentSession:
    """Apply one forward step, or raise Conflict and write nothing."""
    require(t, to, submitted_version)
    for name, value in fields.items():
        setattr(t, name, value)
    setattr(t, STAMP[to], utcnow())
    t.status = to
    t.version += 1
    session.add(t)
    return t


def baseline_vitals(session: Session, t: TreatmentSession) -> VitalSign | None:
    return session.exec(select(VitalSign).where(VitalSign.treatment_id == t.id, VitalSign.clinic_id == t.clinic_id,
                                                VitalSign.phase == VitalPhase.baseline)).first()


def start_reasons(session: Session, clinic, patient, t: TreatmentSession, *, vitals_url: str = "") -> list[Blocker]:
    """Everything that stops this session from starting now; empty means it may start.

    Plugins answer through treatment_blockers. A plugin that raises counts as a blocker
    (a safety check that could not run must not let treatment go ahead): fail closed.
    """
    reasons: list[Blocker] = []
    if t.status == S.checked_in:
        if not t.escort_confirmed:
            reasons.append(Blocker("The escort has not been confirmed at check-in.", vitals_url))
        if baseline_vitals(session, t) is None:
            reasons.append(Blocker("Baseline vital signs have not been recorded.", vitals_url))
    blockers, errors = hooks.relay(clinic).collect("treatment_blockers", expect=Blocker,
                                                   clinic=clinic, patient=patient, treatment=t)
    reasons += blockers
    reasons += [Blocker(f"A safety check could not run (the {e.plugin} plugin failed). "
                       "Treatment cannot start until it runs cleanly.") for e in errors]
    return reasons
