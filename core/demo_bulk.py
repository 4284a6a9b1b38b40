"""Grow the demo clinic into a large, obviously fictional one, fast (issue 11, point 6).

`glia demo --patients 100000 --sessions 2000000` must build in minutes, so rows are plain
dicts written in batches with SQLAlchemy Core executemany (COPY on PostgreSQL), never ORM
objects, all in one transaction. What grows is the core record of a well-run IV ketamine
practice: patients with a diagnosis, their failed antidepressant trials and current medication,
a psychiatrist on the care team, an induction series and (for many) years of maintenance,
mostly completed with a few cancellations and no-shows, PHQ-9 and GAD-7 scores that improve,
and the next visit booked for those still in treatment.

Kept out on purpose, so the grown clinic stays well run: no session today (the demo's own
schedule, with the gate holding its few patients, stays the dashboard), no unreviewed item-9
alert, and no esketamine (each Spravato session needs a REMS monitoring form, an issued
document this bulk path does not write). Plugin records (consents, screenings, invoices) are
the plugins' own and are not grown here.

Names mix the demo's made-up first names and surnames (Riley Mockridge-Notreal), phones sit in
555-0100..0199, e-mails at demo.glia.example, MRNs read ST-G0000001. The generator is seeded.
"""
from __future__ import annotations

import enum
import random
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import func, insert, select, text
from sqlmodel import Session

from core import audit, scoring, search
from core.demo import CURRENT, DIAGNOSES, FIRST, LAST, TRIALS, email
from core.models import (CareTeamMember, Clinic, ClinicianKind, Diagnosis, Instrument, Medication, Modality,
                         OutcomeScore, OutsideClinician, Patient, PatientSearchTerm, Provider, SessionStatus,
                         TreatmentSession)
from core.validators import icd10_description, npi_with_check_digit

BATCH = 20_000  # rows per executemany (or COPY) call
HISTORY_DAYS = 6 * 365  # the clinic has been open six years
MOST_SESSIONS = 300  # weekly maintenance for six years is the longest history
PATIENTS_PER_PROVIDER = 4_000  # a large clinic has more than the demo's two prescribers
MODALITIES = [(Modality.iv_ketamine, 80), (Modality.im_ketamine, 14), (Modality.sublingual, 6)]
CREDENTIALS = ["MD", "DO", "PMHNP-BC", "CRNA"]
S = SessionStatus


@dataclass
class Growth:
    """What one growth added, and a patient with the longest history (for benchmarks)."""

    patients: int
    sessions: int
    scores: int
    busy_patient_id: int | None
    busy_patient_name: str


def grow(session: Session, patients: int, sessions: int | None = None, *, clinic_slug: str = "stillwater",
         seed: int = 2026) -> Growth:
    """Add ``patients`` fictional patients and ``sessions`` treatment sessions to a demo clinic.

    Runs in ``session``'s transaction (the caller commits); may be called again to grow more.
    """
    sessions = 20 * patients if sessions is None else sessions
    if sessions > MOST_SESSIONS * patients:
        raise ValueError(f"at most {MOST_SESSIONS} sessions per patient")
    clinic = session.exec(select(Clinic).where(Clinic.slug == clinic_slug)).scalar_one_or_none()
    if clinic is None:
        raise ValueError(f"no clinic with slug {clinic_slug!r}; build the demo first")
    conn = session.connection()
    writer = _Writer(conn)
    rng = random.Random(seed + _count(conn, Patient, clinic))
    providers = _providers(conn, writer, clinic, patients)
    psychiatrist = conn.execute(select(OutsideClinician.id).where(
        OutsideClinician.clinic_id == clinic.id, OutsideClinician.kind == ClinicianKind.psychiatrist)
        .order_by(OutsideClinician.id)).scalars().first()
    ready_by = next((p["user_id"] for p in providers if p["user_id"]), None)
    shape = _Clinic(clinic, rng, providers, psychiatrist, ready_by)
    counts = _session_counts(rng, patients, sessions)
    first_mrn = _count(conn, Patient, clinic, like=f"{shape.prefix}%")
    patient_id = _next_id(conn, Patient)
    shape.next_session = _next_id(conn, TreatmentSession)
    busy = max(range(patients), key=counts.__getitem__) if patients else None
    busy_name = ""
    with _sqlite_bulk_settings(conn):
        for i in range(patients):
            row = shape.patient(patient_id + i, first_mrn + i)
            writer.add(Patient, row)
            for term in search.rows_for(row["clinic_id"], row["id"], *(row[f] for f in search.FIELDS)):
                writer.add(PatientSearchTerm, term)
            if i == busy:
                busy_name = f"{row['legal_first_name']} {row['legal_last_name']}"
            shape.chart(writer, row, counts[i])
        writer.flush()
    if conn.dialect.name == "postgresql":  # rows came with their ids: move the sequences past them
        for table in ("patient", "treatment_session"):
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                              f"(SELECT max(id) FROM {table}))"))
    audit.append(session, "demo.grown", object_type="clinic", object_id=clinic.id, clinic_id=clinic.id,
                 detail=f"{patients} patients, {sessions} sessions, {shape.scores} scores added")
    return Growth(patients, sessions, shape.scores, None if busy is None else patient_id + busy, busy_name)


def _count(conn, model, clinic, like: str | None = None) -> int:
    stmt = select(func.count()).select_from(model).where(model.clinic_id == clinic.id)
    return conn.execute(stmt.where(model.mrn.like(like)) if like else stmt).scalar_one()


def _next_id(conn, model) -> int:
    return (conn.execute(select(func.max(model.id))).scalar_one() or 0) + 1


def _providers(conn, writer, clinic, patients) -> list[dict]:
    """The clinic's active providers, plus enough fictional ones for the grown list of patients."""
    start = _count(conn, Provider, clinic)
    for k in range(start, start + patients // PATIENTS_PER_PROVIDER):
        writer.add(Provider, dict(clinic_id=clinic.id, first_name=FIRST[k % len(FIRST)],
                                  last_name=LAST[(k * 5) % len(LAST)] + "-Locum", credentials=CREDENTIALS[k % 4],
                                  npi=npi_with_check_digit(f"19{clinic.id:02d}{k:05d}"),
                                  license_number=f"DEMO-{clinic.id}-{k:04d}", license_state=clinic.state))
    writer.flush()
    return [dict(id=pid, user_id=user_id) for pid, user_id in conn.execute(
        select(Provider.id, Provider.user_id).where(Provider.clinic_id == clinic.id, Provider.active)
        .order_by(Provider.id))]


def _session_counts(rng, patients: int, sessions: int) -> list[int]:
    """Sessions per patient: everyone has an induction's worth or more, a long tail has years."""
    weights = [rng.paretovariate(1.6) for _ in range(patients)]
    total = sum(weights) or 1
    counts = [min(MOST_SESSIONS, int(sessions * w / total)) for w in weights]
    short = sessions - sum(counts)
    order = list(range(patients))
    rng.shuffle(order)
    while short > 0:
        for i in order:
            if short and counts[i] < MOST_SESSIONS:
                counts[i] += 1
                short -= 1
    return counts


class _Clinic:
    """Row builders for one clinic; dates are the clinic's local days, stored in UTC."""

    def __init__(self, clinic, rng, providers, psychiatrist, ready_by):
        self.clinic, self.rng, self.providers = clinic, rng, providers
        self.psychiatrist, self.ready_by = psychiatrist, ready_by
        self.zone = ZoneInfo(clinic.timezone)
        self.today = datetime.now(self.zone).date()
        self.prefix = f"{clinic.slug[:2].upper()}-G"
        self.area = (clinic.phone or "555")[:3]
        self.next_session = 1
        self.scores = 0
        self.at = lru_cache(maxsize=None)(self._at)

    def _at(self, day: date, hour: int, minute: int) -> datetime:
        return datetime.combine(day, time(hour, minute), tzinfo=self.zone).astimezone(timezone.utc)

    def phone(self, n: int) -> str:
        return f"{self.area}-555-01{n % 100:02d}"

    def patient(self, pid: int, n: int) -> dict:
        rng, c = self.rng, self.clinic
        first = rng.choice(FIRST)
        a, b = rng.sample(LAST, 2)
        last = a if rng.random() < 0.3 else f"{a}-{b}"
        return dict(id=pid, clinic_id=c.id, mrn=f"{self.prefix}{n + 1:07d}", legal_first_name=first,
                    legal_last_name=last, preferred_name="Zo" if first == "Zoë" else "",
                    dob=date(1950 + rng.randrange(55), rng.randrange(1, 13), rng.randrange(1, 29)),
                    sex=rng.choice("FMX"), address_line1=f"{1 + n % 9999} Example Street", city="Springfield",
                    state=c.state, postal_code=c.postal_code, phone=self.phone(n),
                    email=email(f"patient.g{n + 1}.{c.slug}"),
                    escort_name=f"{rng.choice(FIRST)} {last} (escort)", escort_phone=self.phone(n + 37),
                    emergency_contact_name=f"{rng.choice(FIRST)} {last}", emergency_contact_phone=self.phone(n + 71),
                    created_at=datetime.now(timezone.utc))

    def chart(self, writer, patient: dict, count: int) -> None:
        rng, c, pid = self.rng, self.clinic, patient["id"]
        days = self.days(count)
        first_day = days[0] if days else self.today
        code = rng.choice(DIAGNOSES)
        writer.add(Diagnosis, dict(clinic_id=c.id, patient_id=pid, code=code, description=_description(code),
                                   is_primary=True, noted_on=first_day - timedelta(days=30)))
        for k, (name, cls) in enumerate(rng.sample(TRIALS, 2)):
            start = first_day - timedelta(days=400 - k * 150)
            writer.add(Medication, dict(clinic_id=c.id, patient_id=pid, name=name, drug_class=cls, dose="adequate dose",
                                        frequency="daily", is_trial=True, trial_weeks=8,
                                        trial_outcome=rng.choice(["no response", "partial response", "not tolerated"]),
                                        start_date=start, stop_date=start + timedelta(weeks=8 + k),
                                        prescriber="Dr. Morgan Mindful (demo)", created_at=patient["created_at"]))
        name, cls, dose, freq = rng.choice(CURRENT)
        writer.add(Medication, dict(clinic_id=c.id, patient_id=pid, name=name, drug_class=cls, dose=dose, frequency=freq,
                                    start_date=first_day - timedelta(days=200), prescriber="Dr. Morgan Mindful (demo)",
                                    created_at=patient["created_at"]))
        if self.psychiatrist:
            writer.add(CareTeamMember, dict(clinic_id=c.id, patient_id=pid, clinician_id=self.psychiatrist,
                                            role=ClinicianKind.psychiatrist.value, since=first_day - timedelta(days=500)))
        self.series(writer, patient, days)

    def days(self, count: int) -> list[date]:
        """Induction every few days, then maintenance every one to six weeks; a third are still in
        treatment (their next visit is booked), the rest finished some time ago. Never today."""
        rng = self.rng
        if not count:
            return []
        gaps = [rng.choice((2, 3, 3, 4)) for _ in range(min(count, 6) - 1)]
        if count > 6:
            every = rng.choice((7, 14, 21, 28, 28, 35, 42))
            every = max(3, min(every, (HISTORY_DAYS - 60) // (count - 6)))
            gaps += [max(2, every + rng.randrange(-2, 3)) for _ in range(count - 6)]
        span = sum(gaps)
        end = (self.today + timedelta(days=rng.randint(1, 10)) if rng.random() < 0.35
               else self.today - timedelta(days=rng.randint(1, max(1, HISTORY_DAYS - span))))
        day = end - timedelta(days=span)
        out = []
        for gap in [0] + gaps:
            day += timedelta(days=gap)
            out.append(day + timedelta(days=1) if day == self.today else day)
        return out

    def series(self, writer, patient: dict, days: list[date]) -> None:
        rng, c, pid = self.rng, self.clinic, patient["id"]
        modality = rng.choices([m for m, _ in MODALITIES], [w for _, w in MODALITIES])[0].value
        provider = rng.choice(self.providers)["id"]
        hour, minute = 8 + rng.randrange(9), rng.choice((0, 30))
        weight = float(55 + rng.randrange(45))
        dose = 200.0 if modality == Modality.sublingual.value else round(weight * 0.5, 1)
        baseline = 14 + rng.randrange(11)
        goal = round(baseline * (rng.uniform(0.15, 0.45) if rng.random() < 0.7 else rng.uniform(0.55, 0.8)))
        common = dict(clinic_id=c.id, patient_id=pid, provider_id=provider, modality=modality, weight_kg=weight,
                      escort_name=patient["escort_name"], escort_phone=patient["escort_phone"])
        done = 0
        for day in days:
            start = self.at(day, hour, minute)
            sid = self.next_session
            self.next_session += 1
            if day > self.today:
                writer.add(TreatmentSession, dict(common, id=sid, status=S.scheduled.value, scheduled_at=start))
                continue
            roll = rng.random() if done else 1.0  # the first visit of a series always took place
            if roll < 0.06:
                writer.add(TreatmentSession, dict(common, id=sid, status=(S.cancelled if roll < 0.035 else S.no_show).value,
                                                  scheduled_at=start, ended_at=start + timedelta(minutes=30)))
                continue
            minutes = timedelta(minutes=1)
            writer.add(TreatmentSession, dict(
                common, id=sid, status=S.discharged.value, scheduled_at=start, checked_in_at=start,
                started_at=start + 15 * minutes, dosed_at=start + 15 * minutes, monitoring_at=start + 60 * minutes,
                discharged_at=start + 100 * minutes, dose_mg=dose, duration_minutes=40, escort_confirmed=True,
                discharge_ready_by_id=self.ready_by, version=6))
            if done % 6 == 0:  # PHQ-9 and GAD-7 before the first session and every sixth after
                phq = round(baseline - (baseline - goal) * min(1.0, done / 12))
                for instrument, total in ((Instrument.phq9, phq), (Instrument.gad7, min(21, phq * 2 // 3))):
                    items, band = _answers(instrument, total)
                    writer.add(OutcomeScore, dict(clinic_id=c.id, patient_id=pid, instrument=instrument.value,
                                                  items=items, total=total, band=band,
                                                  item9=0 if instrument == Instrument.phq9 else None, alert=False,
                                                  taken_at=start - 10 * minutes, treatment_id=sid))
                    self.scores += 1
            done += 1


@lru_cache(maxsize=None)
def _description(code: str) -> str:
    return icd10_description(code)


@lru_cache(maxsize=None)
def _answers(instrument: Instrument, total: int) -> tuple[list[int], str]:
    """Item answers spread evenly to reach ``total``, item 9 (thoughts of self-harm) at 0."""
    count = scoring.ITEMS[instrument]
    free = count - 1 if instrument == Instrument.phq9 else count
    q, r = divmod(total, free)
    items = [q + 1] * r + [q] * (free - r) + ([0] if instrument == Instrument.phq9 else [])
    return items, scoring.score(instrument, items)["band"]


class _Writer:
    """Buffers complete rows per table; writes each full batch by executemany, or COPY on PostgreSQL."""

    def __init__(self, conn):
        self.conn = conn
        self.copy = conn.dialect.name == "postgresql"
        self.buffers: dict[sa.Table, list[dict]] = {}
        self.bases: dict[sa.Table, dict] = {}

    def add(self, model, row: dict) -> None:
        table = model.__table__
        if table not in self.bases:  # every column present, so batches share keys and COPY fills NOT NULLs
            self.bases[table] = {c.name: _plain(c.default.arg) if c.default is not None and c.default.is_scalar else None
                                 for c in table.columns if c.name != "id"}
            self.buffers[table] = []
        buffer = self.buffers[table]
        buffer.append({**self.bases[table], **row})
        if len(buffer) >= BATCH:
            self.flush()  # every table, in the order first added: patients before their sessions

    def flush(self) -> None:
        for table, buffer in self.buffers.items():
            if buffer:
                self._write(table, buffer)
                buffer.clear()

    def _write(self, table: sa.Table, rows: list[dict]) -> None:
        if not self.copy:
            self.conn.execute(insert(table), rows)
            return
        # COPY skips SQLAlchemy: apply each column's own bind processor (UTC datetimes, JSON) here
        dialect, names = self.conn.dialect, list(rows[0])
        procs = [(name, table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in names]
        columns = ", ".join(f'"{name}"' for name in names)
        cursor = self.conn.connection.driver_connection.cursor()
        with cursor, cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row([row[n] if p is None or row[n] is None else p(row[n]) for n, p in procs])


def _plain(value):
    return value.value if isinstance(value, enum.Enum) else value


@contextmanager
def _sqlite_bulk_settings(conn):
    """A large page cache for the build only (the indexes of millions of rows stay in memory)."""
    if conn.dialect.name != "sqlite":
        yield
        return
    saved = int(conn.exec_driver_sql("PRAGMA cache_size").scalar())
    conn.exec_driver_sql("PRAGMA cache_size=-524288")  # 512 MB
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={saved}")
