"""`glia billing superbills`: a year of superbills for every patient with paid services, in parallel.

Each worker process builds its own app and database engine (connections never cross a fork)
and imports WeasyPrint once, so rendering stays warm. A worker holds SQLite's write lock only
for the two short writes (taking a number, storing the document), never while it renders.
"""
from __future__ import annotations

import os
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
    """Issue a year roll-up superbill for every patient of CLINIC with paid services in YEAR."""
    ext = current_app.extensions["glia"]
    with session_scope(ext.engine, write=False) as session:
        clinic = session.exec(select(Clinic).where(Clinic.slug == slug)).first()
        if clinic is None:
            raise click.ClickException(f"no clinic with slug {slug!r}")
        from plugins.billing import service

        patient_ids = service.patient_ids_with_paid_services(session, clinic.id, year)
    if not patient_ids:
        click.echo(f"No patient has paid services in {year}.")
        return
    written, problems = run_batch(ext.engine.url.render_as_string(hide_password=False),
                                  [(n, i.module.__name__) for n, i in ext.plugins.items()],
                                  clinic.id, year, out_dir, patient_ids, workers, progress=True)
    click.echo(f"Wrote {len(written)} superbills to {out_dir}.")
    for pid, messages in problems:
        click.echo(f"patient id {pid}: not issued: " + " ".join(messages), err=True)


def run_batch(url: str, plugins: list, clinic_id: int, year: int, out_dir: Path, patient_ids: list[int],
              workers: int, progress: bool = False) -> tuple[list[Path], list]:
    """Fan the patients out over ``workers`` processes; returns (files written, problems)."""
    written, problems = [], []
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = get_context("fork") if hasattr(os, "fork") else get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(url, plugins)) as pool:
        futures = [pool.submit(_issue_year, clinic_id, year, str(out_dir), pid) for pid in patient_ids]
        done = as_completed(futures)
        if progress:
            with click.progressbar(done, length=len(futures), label="Superbills") as bar:
                results = [f.result() for f in bar]
        else:
            results = [f.result() for f in done]
    for pid, path, messages in results:
        if path:
            written.append(Path(path))
        else:
            problems.append((pid, messages))
    return written, problems


def _init_worker(url: str, plugins: list) -> None:
    """One app, engine and warm WeasyPrint per worker process."""
    from core import create_app

    app = create_app({"GLIA_DATABASE_URL": url, "GLIA_CLI": True}, plugins=plugins)
    import weasyprint

    weasyprint.HTML(string="<p>warm</p>").write_pdf()
    _WORKER["app"] = app


def _issue_year(clinic_id: int, year: int, out_dir: str, patient_id: int):
    from plugins.billing import service

    app = _WORKER["app"]
    engine = app.extensions["glia"].engine
    start, end = date(year, 1, 1), date(year, 12, 31)
    with app.app_context():
        with session_scope(engine, write=False) as s:
            clinic = s.get(Clinic, clinic_id)
            patient = s.exec(select(Patient).where(Patient.id == patient_id, Patient.clinic_id == clinic_id)).one()
            data, errors = service.build_superbill(s, clinic, patient, start, end, "year")
        if errors:
            return patient_id, None, [m for m, _where in errors]
        with session_scope(engine) as s:
            number = service.next_number(s, clinic_id, "superbill")  # a failed render leaves a gap: allowed here
        with session_scope(engine, write=False) as s, service.hook_session(s):
            data["extra"] = service.extra_fields(clinic, patient, data)
            _html, pdf = service.render_superbill(clinic, data, number)
        with session_scope(engine) as s:
            sb = service.store_superbill(s, clinic, patient, data, number, pdf, None)
            audit.append(s, "billing.superbill_issued", object_type="billing_superbill", object_id=sb.id,
                         patient_id=patient_id, clinic_id=clinic_id, detail="batch year roll-up")
    path = Path(out_dir) / f"superbill-{number:06d}.pdf"
    path.write_bytes(pdf)
    return patient_id, str(path), []
