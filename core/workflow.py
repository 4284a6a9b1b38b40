"""The treatment-session state machine.

scheduled → checked_in → in_progress → monitoring → discharged, and cancelled / no_show from
scheduled or checked_in. Status only moves forward. Every change bumps
TreatmentSession.version; a form carries the version it was rendered with, so a stale or
repeated submission is refused (HTTP 409) instead of silently writing twice.

There is one way into "in progress": ``start`` (``move`` to in_progress goes through it), which
runs every blocker and writes an audit row whether it starts or refuses. An ORM guard refuses a
status change that did not come through here, so a shell or a plugin cannot set ``status``
directly; past sessions brought in from elsewhere (the demo, an import) are written inside
``importing``, and each such row is audited.
"""
from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, select

from core import audit, hooks
from core.models import Clinic, Patient
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


class Blocked(Exception):
    """The session may not start: ``reasons`` says why. Nothing was saved; the refusal is audited."""

    def __init__(self, reasons: list[Blocker]):
        super().__init__("; ".join(r.reason for r in reasons))
        self.reasons = reasons


class GateBypass(RuntimeError):
    """A session's status was changed without going through the workflow (and its gate)."""


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
    """Apply one forward step, or raise Conflict and write nothing. To in_progress, ``start`` decides."""
    if to == S.in_progress:
        return start(session, t, submitted_version)
    require(t, to, submitted_version)
    if to in (S.monitoring, S.discharged):
        _check_safety(session, t, to, fields)
    return _apply(session, t, to, fields)


class Unsafe(Conflict):
    """The step breaks a dose limit or the observation clock; the form says why before it gets here."""


def _check_safety(session: Session, t: TreatmentSession, to: S, fields: dict) -> None:
    """The dose limits and the observation clock hold on every path, not only the session page's forms."""
    from types import SimpleNamespace

    from core import dosing

    after = SimpleNamespace(**{**t.model_dump(), **fields})
    limits = dosing.limits_for(session, t.clinic_id, t.modality)
    if to == S.monitoring:
        first = bool(limits.first_dose) and dosing.first_of_course(session, t)
        review = dosing.check_dose(limits, after.dose_mg, after.weight_kg, first_of_course=first)
        if after.dose_mg is None or after.dosed_at is None:
            raise Unsafe("Dosing needs the dose and the time dosing began. Nothing was saved.")
        if review.refusals:
            raise Unsafe(" ".join(review.refusals.values()) + " Nothing was saved.")
        if review.needs_override and not (after.dose_override_reason or "").strip():
            raise Unsafe(" ".join(review.overrides) + " A clinician's written override is needed. Nothing was saved.")
        if t.modality.value == "esketamine_nasal" and not (after.lot_number or "").strip():
            raise Unsafe("Esketamine dosing needs the kit's lot number. Nothing was saved.")
        return
    at = dosing.discharge_possible_at(after, limits)
    if at is None or at > utcnow():
        raise Unsafe("The minimum observation after dosing has not passed. Nothing was saved.")
    if after.discharge_ready_by_id is None:
        raise Unsafe("Discharge records the clinician who judged the patient ready to leave. Nothing was saved.")


def start(session: Session, t: TreatmentSession, submitted_version, *, vitals_url: str = "") -> TreatmentSession:
    """The only way a session reaches in_progress, from a form, the CLI, a shell or a plugin.

    Every blocker runs (core's and each enabled plugin's). A refusal rolls back the caller's
    transaction (nothing of the attempt survives), writes its own audit row and raises Blocked.
    """
    require(t, S.in_progress, submitted_version)
    clinic = session.get(Clinic, t.clinic_id)
    patient = session.get(Patient, t.patient_id)
    reasons = start_reasons(session, clinic, patient, t, vitals_url=vitals_url)
    if reasons:
        ids = {"object_id": t.id, "patient_id": t.patient_id, "clinic_id": t.clinic_id,
               "actor": audit.current_actor()}
        session.rollback()
        from core.db import session_scope

        with session_scope(session.get_bind()) as own:
            audit.append(own, "session.start", object_type="treatment_session", outcome="denied",
                         detail=f"{len(reasons)} blocker(s)", **ids)
        raise Blocked(reasons)
    _apply(session, t, S.in_progress, {})
    audit.append(session, "session.start", object_type="treatment_session", object_id=t.id,
                 patient_id=t.patient_id, clinic_id=t.clinic_id)
    return t


def _apply(session: Session, t: TreatmentSession, to: S, fields: dict) -> TreatmentSession:
    for name, value in fields.items():
        setattr(t, name, value)
    setattr(t, STAMP[to], utcnow())
    t.status = to
    t.version += 1
    session.info.setdefault(_PASSED, set()).add((id(t), to))
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
    from core.db import bound

    with bound(session):
        return _start_reasons(session, clinic, patient, t, vitals_url)


def _start_reasons(session, clinic, patient, t, vitals_url) -> list[Blocker]:
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


# -- the guard: no status change around the workflow ------------------------------------------

_PASSED = "glia_workflow_passed"  # (object, status) pairs the workflow itself applied
_IMPORTING = "glia_importing_history"
_BEYOND_START = (S.in_progress, S.monitoring, S.discharged)


@contextmanager
def importing(session: Session):
    """Write sessions that already happened elsewhere (demo history, an import): audited, row by row."""
    session.info[_IMPORTING] = []
    try:
        yield session
        session.flush()
        for obj in session.info[_IMPORTING]:
            audit.append(session, "session.imported", object_type="treatment_session", object_id=obj.id,
                         patient_id=obj.patient_id, clinic_id=obj.clinic_id, detail=obj.status.value)
    finally:
        session.info.pop(_IMPORTING, None)


@event.listens_for(OrmSession, "before_flush")
def _refuse_status_changes_around_the_workflow(session, _ctx, _instances):
    passed = session.info.pop(_PASSED, set())
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, TreatmentSession):
            continue
        if obj in session.new:
            changed = obj.status in _BEYOND_START
        else:
            changed = sa_inspect(obj).attrs.status.history.has_changes()
        if not changed or (id(obj), obj.status) in passed:
            continue
        if _IMPORTING not in session.info:
            raise GateBypass(f"treatment session status set to {obj.status.value} outside core.workflow: "
                             "use workflow.start or workflow.move, where the gate runs")
        session.info[_IMPORTING].append(obj)
