"""`glia billing superbills`: a year of superbills for every patient with paid services, in parallel.

Each worker process builds its own app and database engine (connections never cross a fork)
and imports WeasyPrint and loads its fonts once (core.pdf keeps them), so rendering stays warm.
A worker holds SQLite's write lock only for the two short writes (taking a number, storing the
document), never while it renders.

With GLIA_REDIS_URL set, the same work runs as RQ jobs (plugins.billing.batch) and this command
enqueues them and follows their progress.

The run is idempotent: the database allows one valid superbill per patient and period (see
BillingSuperbill), so a second run, or a run after the first was killed at any point, skips
what was issued (writing any missing file from the stored bytes) and finishes what was not.
A killed run leaves at most an unused superbill number. Workers exit when their parent dies.
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import date
from multiprocessing import get_context
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlmodel import select

from core import queue
from core.db import session_scope
from core.models import Clinic
from plugins.billing.batch import PART_SIZE, enqueue, issue_year, problems_of

_WORKER: dict = {}


@click.group("billing")
def billing_group():
    """Billing: batch documents."""


@billing_group.command("superbills")
@click.option("--clinic", "slug", required=True, help="Clinic slug.")
@click.option("--year", type=int, required=True, help="Calendar year of the dates of service.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the PDF files (required without a queue).")
@click.option("--workers", type=click.IntRange(1, 64), default=lambda: os.cpu_count() or 1, show_default="cores",
              help="Processes for an in-process run (with a queue, start `glia worker`s instead).")
@click.option("--no-wait", is_flag=True, help="With a queue: enqueue and return; follow it with `glia jobs`.")
@click.option("--part-size", type=click.IntRange(1, 1000), default=PART_SIZE, show_default=True,
              help="With a queue: patients per job.")
@with_appcontext
def superbills_command(slug: str, year: int, out_dir: Path | None, workers: int, no_wait: bool, part_size: int):
    """Issue a year roll-up superbill for every patient of CLINIC with paid services in YEAR (safe to rerun).

    With GLIA_REDIS_URL set the batch runs as jobs on the queue, processed by `glia worker` on any
    host; without it, in this process and its workers.
    """
    from plugins.billing.superbills import patient_ids_with_paid_services

    on_queue = queue.configured()
    if not on_queue and out_dir is None:
        raise click.UsageError("--out is required when the batch runs in-process (GLIA_REDIS_URL is not set).")
    if no_wait and out_dir is not None:
        raise click.UsageError("--out needs to wait for the batch; leave out --no-wait, or --out.")
    ext = current_app.extensions["glia"]
    with session_scope(ext.engine, write=False) as session:
        clinic = session.exec(select(Clinic).where(Clinic.slug == slug)).first()
        if clinic is None:
            raise click.ClickException(f"no clinic with slug {slug!r}")
        patient_ids = patient_ids_with_paid_services(session, clinic.id, year)
    if not patient_ids:
        click.echo(f"No patient has paid services in {year}.")
        return
    if on_queue:
        _on_queue(clinic, year, patient_ids, out_dir, no_wait, part_size)
        return
    written, problems, issued = run_batch(ext.engine.url.render_as_string(hide_password=False),
                                          [(n, i.module.__name__) for n, i in ext.plugins.items()],
                                          clinic.id, year, out_dir, patient_ids, workers, progress=True)
    click.echo(f"Wrote {len(written)} superbills to {out_dir} ({issued} issued now, "
               f"{len(written) - issued} issued before).")
    for pid, messages in problems:
        click.echo(f"patient id {pid}: not issued: " + " ".join(messages), err=True)


def _on_queue(clinic: Clinic, year: int, patient_ids: list[int], out_dir: Path | None, no_wait: bool,
              part_size: int) -> None:
    """Enqueue the batch; unless told not to, show its progress and report as the in-process run does."""
    try:
        batch = enqueue(clinic.id, year, patient_ids, part_size)
    except queue.QueueUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Queued batch {batch.id}: {batch.total} patients in {len(batch.jobs)} jobs "
               f"for `glia worker` to process.")
    if no_wait:
        click.echo(f"Follow it with `glia jobs --clinic {clinic.slug}` or on the Jobs page.")
        return
    seen, waiting_since = 0, time.monotonic()
    with click.progressbar(length=batch.total, label="Superbills") as bar:
        while not batch.finished:
            time.sleep(0.5)
            if batch.state == "queued" and waiting_since and time.monotonic() - waiting_since > 15:
                click.echo("\nNo worker has taken a job yet: is `glia worker` running against this Redis?", err=True)
                waiting_since = 0
            batch = queue.load(batch.id, clinic.id)
            bar.update(batch.done + batch.problems - seen)
            seen = batch.done + batch.problems
    app = current_app._get_current_object()
    if out_dir is not None:
        written = _write_all(app, clinic.id, year, out_dir, queue.members(batch.id, "done"))
        click.echo(f"Wrote {len(written)} superbills to {out_dir} ({batch.issued} issued now, "
                   f"{batch.done - batch.issued} issued before).")
    else:
        click.echo(f"{batch.done} superbills ready ({batch.issued} issued now, {batch.done - batch.issued} "
                   f"issued before).")
    for pid in sorted(queue.members(batch.id, "problems")):
        click.echo(f"patient id {pid}: not issued: " + " ".join(problems_of(app, clinic.id, year, pid)), err=True)
    if batch.state == "failed":
        raise click.ClickException(f"batch {batch.id}: {batch.failed_jobs} of {len(batch.jobs)} jobs failed after "
                                   f"their retries (see `glia jobs --clinic {clinic.slug}`); run this command "
                                   f"again to finish them, it skips what was issued.")


def _write_all(app, clinic_id: int, year: int, out_dir: Path, patient_ids: set[int]) -> list[Path]:
    """The stored bytes of each patient's valid year superbill, as the in-process run writes them."""
    from plugins.billing.superbills import slot_head

    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_torn_files(out_dir)
    with session_scope(app.extensions["glia"].engine, write=False) as s:
        return [Path(_write(str(out_dir), slot_head(s, clinic_id, pid, "year", date(year, 1, 1))))
                for pid in sorted(patient_ids)]


def run_batch(url: str, plugins: list, clinic_id: int, year: int, out_dir: Path, patient_ids: list[int],
              workers: int, progress: bool = False) -> tuple[list[Path], list, int]:
    """Fan the patients out over ``workers`` processes; returns (files written, problems, newly issued)."""
    written, problems, issued = [], [], 0
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_torn_files(out_dir)
    ctx = get_context("fork") if hasattr(os, "fork") else get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(url, plugins, os.getpid())) as pool:
        futures = [pool.submit(_issue_year, clinic_id, year, str(out_dir), pid) for pid in patient_ids]
        done = as_completed(futures)
        if progress:
            with click.progressbar(done, length=len(futures), label="Superbills") as bar:
                results = [f.result() for f in bar]
        else:
            results = [f.result() for f in done]
    for pid, path, messages, new in results:
        if path:
            written.append(Path(path))
            issued += new
        else:
            problems.append((pid, messages))
    return written, problems, issued


def _remove_torn_files(out_dir: Path) -> None:
    """Temporary files of a killed run (their writer process is gone); a live run's stay."""
    for tmp in out_dir.glob(".superbill-*.tmp"):
        writer = tmp.name.rsplit(".", 2)[-2]
        try:
            os.kill(int(writer), 0)
        except (ValueError, ProcessLookupError):
            tmp.unlink(missing_ok=True)
        except PermissionError:
            pass  # alive, another user's


def _watch_parent(parent: int) -> None:
    """Exit this worker as soon as the batch that started it is gone (killed, even with SIGKILL)."""
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(0.25)


def _init_worker(url: str, plugins: list, parent: int) -> None:
    """One app, engine and warm WeasyPrint per worker process, and a watch on the parent."""
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="parent-watch").start()
    from core import create_app
    from core.pdf import warm

    app = create_app({"GLIA_DATABASE_URL": url, "GLIA_CLI": True}, plugins=plugins)
    warm()  # tasks run on this thread: they reuse its WeasyPrint font configuration
    _WORKER["app"] = app


def _write(out_dir: str, sb) -> str:
    """The stored bytes to ``superbill-SB-000123.pdf``, replaced atomically (a kill leaves no torn file)."""
    path = Path(out_dir) / f"superbill-{sb.label}.pdf"
    if path.exists() and path.read_bytes() == sb.pdf:
        return str(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(sb.pdf)
    os.replace(tmp, path)
    return str(path)


def _issue_year(clinic_id: int, year: int, out_dir: str, patient_id: int):
    """(patient id, file, problems, 1 if issued now else 0) for one patient's year roll-up."""
    app = _WORKER["app"]
    with app.app_context():
        sb, problems, new = issue_year(app, clinic_id, year, patient_id)
    return patient_id, _write(out_dir, sb) if sb else None, problems, new
