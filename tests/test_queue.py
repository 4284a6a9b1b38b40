"""Batch superbills on the queue: real Redis, real `glia worker` subprocesses, SQLite and PostgreSQL.

The worker builds its app from the environment, as on another host; the test's app shares the
database with it (a file on SQLite) and a Redis database of its own (the redis_url fixture).
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from sqlmodel import select

from core import queue
from core.db import new_session
from core.models import AuditEvent, Clinic, Patient
from plugins.billing.models import BillingCharge, BillingSuperbill
from tests.redis_support import glia_worker, redis_database, redis_text, stop, subprocess_env
from tests.support import login


@pytest.fixture
def redis_url():
    yield from redis_database()


def _setup(db):
    clinic = db.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
    year = db.exec(select(BillingCharge.service_date).where(BillingCharge.clinic_id == clinic.id)
                   .order_by(BillingCharge.service_date.desc())).first().year
    from plugins.billing.superbills import patient_ids_with_paid_services

    return clinic, year, patient_ids_with_paid_services(db, clinic.id, year)


def _year_superbills(engine, clinic_id):
    with new_session(engine, write=False) as s:
        return s.exec(select(BillingSuperbill).where(BillingSuperbill.clinic_id == clinic_id,
                                                     BillingSuperbill.scope == "year")).all()


def _enqueue(app, year: int, *args: str) -> str:
    from plugins.billing.cli import superbills_command

    result = app.test_cli_runner().invoke(superbills_command, ["--clinic", "stillwater", "--year", str(year),
                                                               "--no-wait", *args])
    assert result.exit_code == 0, result.output
    assert "Queued batch" in result.output
    return result.output.split("Queued batch ", 1)[1].split(":", 1)[0]


def _wait(app, batch_id: str, clinic_id: int, until, seconds: float, worker=None):
    deadline = time.monotonic() + seconds
    with app.app_context():
        while True:
            batch = queue.load(batch_id, clinic_id)
            if until(batch):
                return batch
            if worker is not None:
                assert worker.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, f"batch still {batch.state}, {batch.done}/{batch.total}"
            time.sleep(0.1)


def _phi(db, clinic_id: int) -> set[str]:
    """Every name, birth date (as stored and as printed) and member id of the clinic's patients."""
    found = set()
    for p in db.exec(select(Patient).where(Patient.clinic_id == clinic_id)).all():
        found |= {p.legal_first_name, p.legal_last_name, p.legal_name, p.dob.isoformat(),
                  p.dob.strftime("%m/%d/%Y"), p.member_id, p.mrn}
    return {v for v in found if v and len(v) >= 4}


@pytest.fixture
def qapp(make_app, redis_url):
    return make_app(GLIA_REDIS_URL=redis_url)


def test_worker_killed_mid_batch_and_retried_issues_each_superbill_once(qapp, db, db_url, redis_url, tmp_path):
    engine = qapp.extensions["glia"].engine
    clinic, year, patients = _setup(db)
    assert len(patients) >= 3
    batch_id = _enqueue(qapp, year, "--part-size", str(len(patients)))  # one job: the kill lands inside it
    first = glia_worker(db_url, redis_url, tmp_path, "--maintenance-interval", "1", "--heartbeat", "1",
                        "--abandon-after", "4")
    second = None
    try:
        deadline = time.monotonic() + 120
        while not _year_superbills(engine, clinic.id):
            assert first.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the worker issued nothing in two minutes"
            time.sleep(0.05)
        stop(first, signal.SIGKILL)  # worker and work horse, mid-job
        killed_with = len(_year_superbills(engine, clinic.id))
        time.sleep(3)
        assert len(_year_superbills(engine, clinic.id)) == killed_with  # nothing of the dead worker lives on
        assert 0 < killed_with < len(patients)
        with qapp.app_context():
            job = queue.queue().fetch_job(f"{batch_id}-1")
            assert job.get_status() == "started"  # abandoned: nobody will finish it but a retry
            assert queue.load(batch_id, clinic.id).state == "running"

        second = glia_worker(db_url, redis_url, tmp_path, "--maintenance-interval", "1", "--heartbeat", "1",
                             "--abandon-after", "4")
        batch = _wait(qapp, batch_id, clinic.id, lambda b: b.finished, 400, second)
    finally:
        for proc in (first, second):
            if proc is not None:
                stop(proc, signal.SIGKILL)
    assert batch.state == "finished"
    assert (batch.done, batch.total, batch.problems) == (len(patients), len(patients), 0)
    with qapp.app_context():
        job = queue.queue().fetch_job(f"{batch_id}-1")
        assert job.get_status() == "finished" and job.retries_left == len(queue.retry_intervals(qapp)) - 1
        assert job.return_value()["existing"] >= killed_with  # the retry skipped what the killed attempt issued

    issued = _year_superbills(engine, clinic.id)
    assert sorted(sb.patient_id for sb in issued) == sorted(patients)  # exactly one per patient and period
    assert len({sb.number for sb in issued}) == len(issued)
    with new_session(engine, write=False) as s:
        audited = s.exec(select(AuditEvent.object_id).where(AuditEvent.action == "billing.superbill_issued",
                                                            AuditEvent.clinic_id == clinic.id)).all()
    assert sorted(audited) == sorted(str(sb.id) for sb in issued)  # one audit row per document, none twice

    from plugins.billing.cli import superbills_command
    out = tmp_path / "out"
    worker = glia_worker(db_url, redis_url, tmp_path, "--burst")
    try:  # a rerun on the queue changes nothing and writes the stored files
        result = qapp.test_cli_runner().invoke(superbills_command, ["--clinic", "stillwater", "--year", str(year),
                                                                    "--out", str(out)])
    finally:
        stop(worker)
    assert result.exit_code == 0, result.output
    assert f"Wrote {len(patients)} superbills to {out} (0 issued now, {len(patients)} issued before)" in result.output
    assert {f.read_bytes() for f in out.glob("*.pdf")} == {sb.pdf for sb in issued}
    assert len(_year_superbills(engine, clinic.id)) == len(patients)

    text = redis_text(redis_url)
    assert batch_id in text  # the scan does see the queue's data
    assert [v for v in _phi(db, clinic.id) if v in text] == []


def _rename(engine, old: str, new: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"ALTER TABLE {old} RENAME TO {new}")


def test_a_job_failing_every_retry_ends_failed_on_the_page_and_cli_and_issues_nothing(make_app, db, db_url, redis_url,
                                                                                   tmp_path):
    """The superbill table is gone while the worker runs (a botched restore): every attempt fails, the
    retries run out, the batch shows as failed, nothing is issued or audited, Redis holds no PHI; once
    the table is back, running the command again issues each superbill once."""
    from core.commands.worker import jobs_command

    app = make_app(GLIA_REDIS_URL=redis_url, GLIA_JOB_RETRY_INTERVALS="1,1")
    engine = app.extensions["glia"].engine
    clinic, year, patients = _setup(db)
    db.rollback()
    # the worker starts on a whole database (startup refuses one missing a table), then the table goes
    worker = glia_worker(db_url, redis_url, tmp_path, "--maintenance-interval", "1")
    deadline = time.monotonic() + 120
    while not any("Listening on" in f.read_text() for f in tmp_path.glob("worker-*.log")):
        assert worker.poll() is None and time.monotonic() < deadline, "the worker did not start"
        time.sleep(0.2)
    _rename(engine, "billing_superbill", "billing_superbill_away")
    batch_id = _enqueue(app, year, "--part-size", str(len(patients)))
    try:
        batch = _wait(app, batch_id, clinic.id, lambda b: b.finished, 300, worker)
    finally:
        stop(worker, signal.SIGKILL)
        _rename(engine, "billing_superbill_away", "billing_superbill")
    assert (batch.state, batch.failed_jobs, batch.done) == ("failed", 1, 0)
    with app.app_context():
        job = queue.queue().fetch_job(f"{batch_id}-1")
        assert job.get_status() == "failed" and job.retries_left == 0
        assert "JobFailed" in job.latest_result().exc_string  # our message, not the database's (which may quote PHI)
    assert _year_superbills(engine, clinic.id) == []
    with new_session(engine, write=False) as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "billing.superbill_issued")).all() == []
    client = app.test_client()
    login(app, client, "manager")
    page = client.get("/jobs/").get_data(as_text=True)
    assert "Failed" in page and "1 of 1 jobs failed after their retries" in page
    listed = app.test_cli_runner().invoke(jobs_command, ["--clinic", "stillwater"])
    assert f"failed    0/{len(patients)} done, 1 jobs failed" in listed.output
    assert [v for v in _phi(db, clinic.id) if v in redis_text(redis_url)] == []

    again = _enqueue(app, year)
    worker = glia_worker(db_url, redis_url, tmp_path, "--burst")
    try:
        assert worker.wait(timeout=400) == 0
    finally:
        stop(worker, signal.SIGKILL)
    with app.app_context():
        assert queue.load(again, clinic.id).state == "finished"
    assert sorted(sb.patient_id for sb in _year_superbills(engine, clinic.id)) == sorted(patients)


def test_progress_on_the_jobs_page_and_cli_for_that_clinic_only(qapp, db, db_url, redis_url, tmp_path):
    from core.commands.worker import jobs_command

    clinic, year, patients = _setup(db)
    batch_id = _enqueue(qapp, year, "--part-size", "7")
    client = qapp.test_client()
    login(qapp, client, "manager")
    page = client.get("/jobs/").get_data(as_text=True)
    assert f"Year superbills {year}" in page and batch_id in page
    assert "Queued" in page and f"0 / {len(patients)}" in page
    assert 'href="/jobs/"' in page  # in the manager's navigation
    listed = qapp.test_cli_runner().invoke(jobs_command, ["--clinic", "stillwater"])
    assert f"{batch_id}" in listed.output and f"queued    0/{len(patients)} done" in listed.output

    worker = glia_worker(db_url, redis_url, tmp_path, "--burst")
    try:
        assert worker.wait(timeout=400) == 0
    finally:
        stop(worker, signal.SIGKILL)
    page = client.get("/jobs/").get_data(as_text=True)
    assert "Finished" in page and f"{len(patients)} / {len(patients)}" in page
    assert f"{len(patients)} issued now, 0 issued before" in page
    listed = qapp.test_cli_runner().invoke(jobs_command, ["--clinic", "stillwater"])
    assert f"finished  {len(patients)}/{len(patients)} done" in listed.output
    assert sorted(sb.patient_id for sb in _year_superbills(qapp.extensions["glia"].engine, clinic.id)) == patients

    other = qapp.test_client()
    login(qapp, other, "harbor.manager")
    page = other.get("/jobs/").get_data(as_text=True)
    assert batch_id not in page and "No batches yet." in page
    listed = qapp.test_cli_runner().invoke(jobs_command, ["--clinic", "harbor"])
    assert batch_id not in listed.output and "No batches for harbor" in listed.output
    front = qapp.test_client()
    login(qapp, front, "frontdesk")
    assert front.get("/jobs/").status_code == 403

    assert [v for v in _phi(db, clinic.id) if v in redis_text(redis_url)] == []


def test_without_a_queue_the_jobs_page_says_so_and_the_worker_refuses(app, db, db_url, tmp_path):
    client = app.test_client()
    login(app, client, "manager")
    page = client.get("/jobs/").get_data(as_text=True)
    assert "No job queue is set up" in page
    assert 'href="/jobs/"' not in client.get("/").get_data(as_text=True)
    env = {**subprocess_env(db_url, ""), "GLIA_REDIS_URL": ""}
    done = subprocess.run([sys.executable, "-c", "from core.cli import main; main()", "worker", "--burst"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "GLIA_REDIS_URL is not set" in done.stderr


def test_redis_down_the_batch_is_refused_with_a_clear_message(make_app, db):
    from plugins.billing.cli import superbills_command

    app = make_app(GLIA_REDIS_URL="redis://127.0.0.1:1/0")
    clinic, year, _patients = _setup(db)
    result = app.test_cli_runner().invoke(superbills_command, ["--clinic", "stillwater", "--year", str(year)])
    assert result.exit_code != 0
    assert "Redis at GLIA_REDIS_URL does not answer" in result.output
    assert _year_superbills(app.extensions["glia"].engine, clinic.id) == []
