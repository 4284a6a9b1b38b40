"""`glia worker` works the job queue on any host; `glia jobs` lists a clinic's batches.

The worker is an RQ worker built from the same environment as the app (GLIA_DATABASE_URL,
GLIA_REDIS_URL), so its jobs run with the app context, the clinic's plugins and their own
database sessions. Each job runs in a forked work horse; the parent's database connections are
dropped in the child (SQLAlchemy's pool must never be shared across a fork).
"""
from __future__ import annotations

import os
from datetime import datetime, timezone

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlmodel import select

from core import queue, validators
from core.db import session_scope
from core.models import Clinic


def _require_queue():
    if not queue.configured():
        raise click.ClickException("GLIA_REDIS_URL is not set: there is no queue (batches run in-process).")
    try:
        return queue.require()
    except queue.QueueUnavailable as exc:
        raise click.ClickException(str(exc)) from None


@click.command("worker")
@click.option("--burst", is_flag=True, help="Exit once the queue is empty.")
@click.option("--maintenance-interval", type=click.IntRange(1), default=60, show_default=True,
              help="Seconds between looks for jobs abandoned by a dead worker (they are retried).")
@click.option("--heartbeat", type=click.IntRange(1), default=30, show_default=True,
              help="Seconds between a running job's heartbeats.")
@click.option("--abandon-after", type=click.IntRange(1), default=60, show_default=True,
              help="Seconds of silence, beyond a heartbeat, after which a running job counts as abandoned.")
@with_appcontext
def worker_command(burst: bool, maintenance_interval: int, heartbeat: int, abandon_after: int):
    """Process queued jobs (batch superbills) until stopped."""
    conn = _require_queue()
    app = current_app._get_current_object()
    engine = app.extensions["glia"].engine
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
    from core import pdf

    pdf.warm()  # WeasyPrint imported and fonts loaded once here: every forked work horse inherits them
    # the ICD-10-CM code set (checked on every superbill) takes seconds to parse: once here, not per job
    validators.icd10_problem("F33.2")
    # an idle worker waits for a job at most worker_ttl - 15 s, and looks for abandoned jobs only
    # between waits: so the wait is the maintenance interval
    worker = queue.AppWorker([queue.queue(app)], connection=conn, maintenance_interval=maintenance_interval,
                             worker_ttl=maintenance_interval + 15, job_monitoring_interval=heartbeat)
    worker.app = app
    worker.grace = abandon_after
    worker.work(burst=burst, with_scheduler=True, logging_level="INFO")


@click.command("jobs")
@click.option("--clinic", "slug", required=True, help="Clinic slug.")
@with_appcontext
def jobs_command(slug: str):
    """List CLINIC's recent batches on the queue: state and progress."""
    _require_queue()
    with session_scope(current_app.extensions["glia"].engine, write=False) as session:
        clinic = session.exec(select(Clinic).where(Clinic.slug == slug)).first()
        if clinic is None:
            raise click.ClickException(f"no clinic with slug {slug!r}")
    batches = queue.for_clinic(clinic.id)
    if not batches:
        click.echo(f"No batches for {slug} in the last 7 days.")
    for b in batches:
        when = datetime.fromtimestamp(b.created_at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        line = f"{b.id}  {when}  {b.label:<22} {b.state:<9} {b.done}/{b.total} done"
        if b.problems:
            line += f", {b.problems} need a fix"
        if b.failed_jobs:
            line += f", {b.failed_jobs} jobs failed"
        click.echo(line)
