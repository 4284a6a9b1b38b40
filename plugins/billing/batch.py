"""The year-end superbill batch, one patient at a time, for a process pool or an RQ worker.

`issue_year` is safe to repeat: the database allows one valid superbill per patient and period,
so an attempt after a killed one finds what was stored and skips it. A worker holds SQLite's
write lock only for the two short writes (taking a number, storing the document), never while
it renders.

On the queue (GLIA_REDIS_URL set) a job is a part of PART_SIZE patients: Redis then holds a few
hundred jobs for a large clinic instead of one per patient, a retried part skips its finished
patients at the cost of one lookup each, and progress is still counted per patient (core.queue).
"""
from __future__ import annotations

from datetime import date

from flask import Flask, current_app
from sqlmodel import select

from core import audit, queue
from core.db import session_scope
from core.models import Clinic, Patient

PART_SIZE = 20
JOB = "plugins.billing.batch.superbill_job"


def issue_year(app: Flask, clinic_id: int, year: int, patient_id: int):
    """(superbill or None, problems, 1 if issued now else 0) for one patient's year roll-up."""
    from plugins.billing import superbills as sbs
    from plugins.billing.documents import hook_session
    from plugins.billing.money import next_number

    engine = app.extensions["glia"].engine
    start, end = date(year, 1, 1), date(year, 12, 31)
    with session_scope(engine, write=False) as s:
        clinic = s.get(Clinic, clinic_id)
        patient = s.exec(select(Patient).where(Patient.id == patient_id, Patient.clinic_id == clinic_id)).one()
        try:
            revision, replaces_id = sbs.next_slot(s, clinic_id, patient_id, "year", start)
        except sbs.AlreadyIssued as exc:
            return exc.existing, [], 0  # issued by an earlier run or attempt
        data, errors = sbs.build_superbill(s, clinic, patient, start, end, "year")
    if errors:
        return None, [m for m, _where in errors], 0
    with session_scope(engine) as s:
        number = next_number(s, clinic_id, "superbill")  # an attempt killed before storing leaves this unused
    with session_scope(engine, write=False) as s, hook_session(s):
        data["extra"] = sbs.extra_fields(clinic, patient, data)
        _html, pdf = sbs.render_superbill(clinic, data, number)
    try:
        with session_scope(engine) as s:
            sb = sbs.store_superbill(s, clinic, patient, data, number, pdf, None, revision, replaces_id)
            audit.append(s, "billing.superbill_issued", object_type="billing_superbill", object_id=sb.id,
                         patient_id=patient_id, clinic_id=clinic_id, detail="batch year roll-up")
    except sbs.AlreadyIssued:  # another run stored this period meanwhile: keep its superbill
        with session_scope(engine, write=False) as s:
            return sbs.slot_head(s, clinic_id, patient_id, "year", start), [], 0
    return sb, [], 1


def problems_of(app: Flask, clinic_id: int, year: int, patient_id: int) -> list[str]:
    """What keeps this patient's year superbill from being issued (read again, for the CLI's report)."""
    from plugins.billing import superbills as sbs

    with session_scope(app.extensions["glia"].engine, write=False) as s:
        clinic = s.get(Clinic, clinic_id)
        patient = s.exec(select(Patient).where(Patient.id == patient_id, Patient.clinic_id == clinic_id)).one()
        _data, errors = sbs.build_superbill(s, clinic, patient, date(year, 1, 1), date(year, 12, 31), "year")
    return [m for m, _where in errors]


def enqueue(clinic_id: int, year: int, patient_ids: list[int], part_size: int = PART_SIZE) -> queue.Batch:
    parts = [patient_ids[i:i + part_size] for i in range(0, len(patient_ids), part_size)]
    return queue.start(clinic_id, "superbills", {"year": year}, JOB, parts)


def superbill_job(batch_id: str, clinic_id: int, patient_ids: list[int], year: int) -> dict:
    """One part of a batch, run by `glia worker`: counts only in its result, ids only in its errors."""
    app = current_app._get_current_object()
    counts = dict.fromkeys(queue.OUTCOMES, 0)
    for pid in patient_ids:
        try:
            sb, problems, new = issue_year(app, clinic_id, year, pid)
        except Exception as exc:  # noqa: BLE001 - the message may quote patient data; RQ stores it
            raise queue.JobFailed(f"{type(exc).__name__} while issuing the superbill of patient id {pid}; "
                                  "the retry skips the patients already issued") from None
        outcome = "problem" if sb is None else "issued" if new else "existing"
        queue.record(batch_id, pid, outcome, app)
        counts[outcome] += 1
    return counts
