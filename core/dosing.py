"""Dose safeguards and the observation clock, per modality.

Each clinic has one dose_limit row per modality it has edited; without a row the label-based
defaults in core/data/dose_limits.json apply. A dose outside the usual range needs a
clinician's written override (kept on the session), a dose above the ceiling is refused, and
discharge waits for the modality's minimum observation after dosing. When the limits cannot be
read, dosing and discharge are refused (fail closed), never waved through.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, func, select

from core.models import Modality, SessionStatus, TreatmentSession, enum_type, ts

DEFAULTS_FILE = Path(__file__).resolve().parent / "data" / "dose_limits.json"
UNITS = {"mg": "mg", "mg_per_kg": "mg/kg"}
EDITABLE = ("usual_min", "usual_max", "ceiling", "allowed_doses", "min_observation_minutes")


class DoseLimit(SQLModel, table=True):
    """A clinic's own limits for one modality (tightened, or loosened by an admin)."""

    __tablename__ = "dose_limit"
    clinic_id: int = Field(foreign_key="clinic.id", primary_key=True)
    modality: Modality = Field(sa_type=enum_type(Modality, 20), primary_key=True)
    unit: str = Field(max_length=10)
    usual_min: float
    usual_max: float
    ceiling: float
    allowed_doses: list[float] = Field(default_factory=list, sa_type=sa.JSON)  # esketamine: 56, 84
    min_observation_minutes: int
    updated_at: datetime | None = ts()
    updated_by_id: int | None = Field(default=None, foreign_key="user.id")


@dataclass(frozen=True)
class Limits:
    """The limits in force for one modality: the clinic's row, or the label default."""

    modality: Modality
    unit: str
    usual_min: float
    usual_max: float
    ceiling: float
    allowed_doses: tuple[float, ...]
    min_observation_minutes: int
    first_dose: float | None = None  # day 1 of induction (esketamine: 56 mg)
    device_mg: float | None = None  # esketamine: 28 mg per nasal device
    label_locked: bool = False  # esketamine: never loosened beyond the label
    observe_from_end: bool = False  # IV: the clock starts when the infusion ends
    custom: bool = False  # the clinic has its own row

    @property
    def per_kg(self) -> bool:
        return self.unit == "mg_per_kg"

    @property
    def unit_label(self) -> str:
        return UNITS[self.unit]


class LimitsUnavailable(RuntimeError):
    """The defaults file is missing or malformed: dosing and discharge must not go ahead."""


@lru_cache(maxsize=1)
def defaults() -> dict[Modality, Limits]:
    try:
        raw = json.loads(DEFAULTS_FILE.read_text(encoding="utf-8"))
        found = {m: _limits_from(m, raw[m.value]) for m in Modality}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LimitsUnavailable(f"dose limits defaults unreadable: {type(exc).__name__}") from None
    return found


def _limits_from(modality: Modality, spec: dict) -> Limits:
    if spec["unit"] not in UNITS:
        raise ValueError("unit")
    return Limits(modality=modality, unit=spec["unit"], usual_min=float(spec["usual_min"]),
                  usual_max=float(spec["usual_max"]), ceiling=float(spec["ceiling"]),
                  allowed_doses=tuple(float(d) for d in spec.get("allowed_doses", [])),
                  min_observation_minutes=int(spec["min_observation_minutes"]),
                  first_dose=spec.get("first_dose"), device_mg=spec.get("device_mg"),
                  label_locked=bool(spec.get("label_locked")), observe_from_end=bool(spec.get("observe_from_end")))


def _apply_row(base: Limits, row: DoseLimit) -> Limits:
    return replace(base, usual_min=row.usual_min, usual_max=row.usual_max, ceiling=row.ceiling,
                   allowed_doses=tuple(float(d) for d in row.allowed_doses or ()),
                   min_observation_minutes=row.min_observation_minutes, custom=True)


def all_limits(session: Session, clinic_id: int) -> dict[Modality, Limits]:
    """Every modality's limits for this clinic, in one query."""
    found = dict(defaults())
    for row in session.exec(select(DoseLimit).where(DoseLimit.clinic_id == clinic_id)).all():
        found[row.modality] = _apply_row(found[row.modality], row)
    return found


def limits_for(session: Session, clinic_id: int, modality: Modality) -> Limits:
    row = session.exec(select(DoseLimit).where(DoseLimit.clinic_id == clinic_id,
                                               DoseLimit.modality == modality)).first()
    base = defaults()[modality]
    return _apply_row(base, row) if row else base


# -- the dose check --------------------------------------------------------------------------

@dataclass
class DoseReview:
    """What a dose needs: ``refusals`` stop it outright; ``overrides`` need a written reason."""

    refusals: dict[str, str] = field(default_factory=dict)  # form field -> message
    overrides: list[str] = field(default_factory=list)
    mg_per_kg: float | None = None

    @property
    def needs_override(self) -> bool:
        return bool(self.overrides)


def _n(value: float) -> str:
    return f"{value:g}"


def check_dose(limits: Limits, dose_mg: float | None, weight_kg: float | None, *, first_of_course: bool) -> DoseReview:
    """Check one session's dose against the clinic's limits for its modality.

    ``first_of_course``: this is the patient's first session of the modality (esketamine:
    day 1 of induction, labelled at 56 mg). Without a dose only the weight is checked.
    """
    review = DoseReview()
    name = limits.modality.label
    if limits.per_kg and not weight_kg:
        review.refusals["weight_kg"] = (f"Weight is required for {name}: the dose is checked in mg/kg. "
                                        "Enter today's weight.")
    if dose_mg is None or review.refusals:
        return review
    if limits.per_kg:
        per_kg = round(dose_mg / weight_kg, 2)  # judged as shown: 34.8 mg at 69.7 kg is 0.50 mg/kg
        review.mg_per_kg = per_kg
        if per_kg > limits.ceiling:
            review.refusals["dose_mg"] = (f"{per_kg:.2f} mg/kg is above this clinic's ceiling of {_n(limits.ceiling)} mg/kg "
                                          f"for {name}: refused, even with an override.")
        elif not limits.usual_min <= per_kg <= limits.usual_max:
            review.overrides.append(f"{per_kg:.2f} mg/kg is outside the usual {_n(limits.usual_min)}–"
                                    f"{_n(limits.usual_max)} mg/kg for {name}.")
        return review
    if dose_mg > limits.ceiling:
        review.refusals["dose_mg"] = (f"{_n(dose_mg)} mg is above the maximum of {_n(limits.ceiling)} mg in one session "
                                      f"for {name}: refused, even with an override.")
        return review
    if limits.allowed_doses:
        doses = " or ".join(f"{_n(d)} mg" for d in limits.allowed_doses)
        if dose_mg not in limits.allowed_doses:
            review.overrides.append(f"{_n(dose_mg)} mg is not a labelled dose of {name} (this clinic: {doses}).")
        elif first_of_course and limits.first_dose and dose_mg != limits.first_dose:
            review.overrides.append(f"Day 1 of induction is {_n(limits.first_dose)} mg; this is the patient's first "
                                    f"{name} session and the dose is {_n(dose_mg)} mg.")
    elif not limits.usual_min <= dose_mg <= limits.usual_max:
        review.overrides.append(f"{_n(dose_mg)} mg is outside this clinic's usual {_n(limits.usual_min)}–"
                                f"{_n(limits.usual_max)} mg for {name}.")
    return review


def first_of_course(session: Session, t: TreatmentSession) -> bool:
    """No earlier session of this patient and modality was dosed (esketamine: day 1 of induction)."""
    earlier = session.exec(select(func.count()).select_from(TreatmentSession).where(
        TreatmentSession.clinic_id == t.clinic_id, TreatmentSession.patient_id == t.patient_id,
        TreatmentSession.modality == t.modality, TreatmentSession.id != t.id,
        TreatmentSession.status.in_([SessionStatus.monitoring, SessionStatus.discharged]))).one()
    return earlier == 0


def dose_text(treatment) -> str:
    """The dose as the chart and letters show it: "35 mg (0.50 mg/kg at 70.0 kg)", "56 mg (2 devices)"."""
    dose = getattr(treatment, "dose_mg", None)
    if not dose:
        return ""
    limits = defaults()[Modality(treatment.modality)]
    text = f"{_n(dose)} mg"
    weight = getattr(treatment, "weight_kg", None)
    if limits.per_kg and weight:
        return f"{text} ({dose / weight:.2f} mg/kg at {weight:.1f} kg)"
    if limits.device_mg and math.isclose(dose % limits.device_mg, 0, abs_tol=1e-9):
        devices = int(dose // limits.device_mg)
        return f"{text} ({devices} device{'' if devices == 1 else 's'})"
    return text


# -- the observation clock ------------------------------------------------------------------

def clock_start(t: TreatmentSession) -> datetime | None:
    """When observation is counted from: dosing (a session dosed before dosing times were
    recorded counts from when its dose was charted, which is later and so the safer side)."""
    return t.dosed_at or t.monitoring_at


def discharge_possible_at(t: TreatmentSession, limits: Limits) -> datetime | None:
    """The earliest discharge: dosing + the infusion (IV, when its duration is recorded) + observation."""
    start = clock_start(t)
    if start is None:
        return None
    infusion = (t.duration_minutes or 0) if limits.observe_from_end else 0
    return start + timedelta(minutes=infusion + limits.min_observation_minutes)


def observed_minutes(t: TreatmentSession) -> int | None:
    """Minutes from dosing (the first device) to discharge, as the REMS form counts them."""
    start = clock_start(t)
    if start is None or t.discharged_at is None:
        return None
    return int((t.discharged_at - start).total_seconds() // 60)


def wait_text(seconds: float) -> str:
    """A wait as people say it: "1 h 58 min", "2 h", "12 min", "less than a minute"."""
    minutes = math.ceil(max(0, seconds) / 60)
    if minutes < 1:
        return "less than a minute"
    hours, minutes = divmod(minutes, 60)
    return " ".join(part for part in (f"{hours} h" if hours else "", f"{minutes} min" if minutes else "") if part)
