"""`glia billing superbills`: a year of superbills for every patient with paid services, in parallel.

Each worker process builds its own app and database engine (connections never cross a fork)
and imports WeasyPrint once, so rendering stays warm. A worker holds SQLite's write lock only
for the two short writes (taking a number, storing the document), never while it renders.

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

from core import audit
from core.db import session_scope
from core.models import Clinic, Patient

_WORKER: dict = {}


@click.group("billing")
def billing_group():
    """Billing: batch documents."""


@billing_group.command("superbills")
@click.option("--clinic", "slug", required=True, help="Clinic slug.")
@click.option("--year", type=int, required=True, help="Calendar year of the dates of service.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for the PDF files.")
@click.option("--workers", type=click.IntRange(1, 64), default=lambda: os.cpu_count() or 1, show_default="cores")
@with_appcontext
def superbills_command(slug: str, year: int, out_dir: Path, workers: int):
    """Issue a year roll-up superbill for every patient of CLINIC with paid services in YEAR (safe to rerun)."""
    from plugins.billing.superbills import patient_ids_with_paid_services

    ext = current_app.extensions["glia"]
    with session_scope(ext.engine, write=False) as session:
        clinic = session.exec(select(Clinic).where(Clinic.slug == slug)).first()
        if clinic is None:
            raise click.ClickException(f"no clinic with slug {slug!r}")
        patient_ids = patient_ids_with_paid_services(session, clinic.id, year)
    if not patient_ids:
        click.echo(f"No patient has paid services in {year}.")
        return
    written, problems, issued = run_batch(ext.engine.url.render_as_string(hide_password=False),
                                          [(n, i.module.__name__) for n, i in ext.plugins.items()],
                                          clinic.id, year, out_dir, patient_ids, workers, progress=True)
    click.echo(f"Wrote {len(written)} superbills to {out_dir} ({issued} issued now, "
               f"{len(written) - issued} issued before).")
    for pid, messages in problems:
        click.echo(f"patient id {pid}: not issued: " + " ".join(messages), err=True)


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

    app = create_app({"GLIA_DATABASE_URL": url, "GLIA_CLI": True}, plugins=plugins)
    import weasyprint

    weasyprint.HTML(string="<p>warm</p>").write_pdf()
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
    from plugins.billing import superbills as sbs
    from plugins.billing.documents import hook_session
    from plugins.billing.money import next_number

    app = _WORKER["app"]
    engine = app.extensions["glia"].engine
    start, end = date(year, 1, 1), date(year, 12, 31)
    with app.app_context():
        with session_scope(engine, write=False) as s:
            clinic = s.get(Clinic, clinic_id)
            patient = s.exec(select(Patient).where(Patient.id == patient_id, Patient.clinic_id == clinic_id)).one()
            try:
                revision, replaces_id = sbs.next_slot(s, clinic_id, patient_id, "year", start)
            except sbs.AlreadyIssued as exc:
                return patient_id, _write(out_dir, exc.existing), [], 0  # issued by an earlier run
            data, errors = sbs.build_superbill(s, clinic, patient, start, end, "year")
        if errors:
            return patient_id, None, [m for m, _where in errors], 0
        with session_scope(engine) as s:
            number = next_number(s, clinic_id, "superbill")  # a run killed before storing leaves this unused
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
                return patient_id, _write(out_dir, sbs.slot_head(s, clinic_id, patient_id, "year", start)), [], 0
    return patient_id, _write(out_dir, sb), [], 1
