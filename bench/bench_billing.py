"""Billing benchmarks, printed as ratios (QUALITY.md targets; not part of the test run).

1. A superbill PDF through our whole path (data, validation, hook, template, render_pdf relay)
   against WeasyPrint rendering the same final HTML alone: target at most 1.15x. Printed for wall
   and for process CPU time; the CPU figure stays honest when other work shares the machine.
   The same superbill against WeasyPrint rendering a plain one-page invoice with as many lines
   (one table, one font, no layout beyond blocks): the floor for this engine, target at most 2.5x.
2. `glia billing superbills` for a year with 2 workers against 1: target at least 1.7x throughput.

    python bench/bench_billing.py [--patients 40] [--rounds 7]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from sqlmodel import select

CONFIG = {"GLIA_CLI": True}


def plain_invoice(data: dict) -> str:
    """The floor: an invoice anyone would write for WeasyPrint, with the superbill's lines."""
    from html import escape

    rows = "".join(f"<tr><td>{x['date']}</td><td>{x['code']}</td><td>{escape(x['descriptor'])}</td>"
                   f"<td>{x['charge_cents'] / 100:.2f}</td></tr>" for x in data["lines"])
    return ("<!doctype html><html><head><meta charset='utf-8'><style>@page { size: letter; margin: 15mm }"
            "body { font-family: 'DejaVu Sans', sans-serif; font-size: 9pt }"
            "table { width: 100%; border-collapse: collapse } td, th { text-align: left; padding: 2pt;"
            " border-bottom: .5pt solid #ccc }</style></head><body>"
            f"<h1>Invoice</h1><p>{escape(data['practice']['name'])}<br>{escape(data['patient']['name'])}</p>"
            f"<table><tr><th>Date</th><th>Code</th><th>Description</th><th>Amount</th></tr>{rows}</table>"
            f"<p>Total {data['total_cents'] / 100:.2f}</p></body></html>")


def build_db(workdir: Path, extra_patients: int) -> str:
    """A migrated, demo-seeded SQLite file (billing only) plus extra patients with a paid year."""
    from core import create_app, demo, migrate
    from core.db import session_scope
    from core.models import Clinic, Patient, Provider, Diagnosis, utcnow
    from plugins.billing import service
    from plugins.billing.models import BillingCharge

    url = f"sqlite:///{workdir / 'bench.db'}"
    app = create_app({"GLIA_DATABASE_URL": url, **CONFIG}, plugins=[("billing", "plugins.billing")],
                     check_schema=False)
    ext = app.extensions["glia"]
    with app.app_context():
        migrate.upgrade(ext)
        with session_scope(ext.engine) as s, service.hook_session(s):
            demo.seed(s, ext)
        with session_scope(ext.engine) as s:
            clinic = s.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
            provider = s.exec(select(Provider).where(Provider.clinic_id == clinic.id)).first()
            fees = service.fees_by_code(s, clinic.id)
            for n in range(extra_patients):
                p = Patient(clinic_id=clinic.id, mrn=f"BN{n:05d}", legal_first_name="Bench", legal_last_name=f"Sample{n}",
                            dob=date(1980, 1, 1 + n % 28), sex="F", address_line1=f"{n} Example Street", city="Springfield",
                            state="OR", postal_code="97477", created_at=utcnow())
                s.add(p)
                s.flush()
                s.add(Diagnosis(clinic_id=clinic.id, patient_id=p.id, code="F33.2", is_primary=True,
                                description="Major depressive disorder, recurrent severe without psychotic features"))
                for k in range(4):
                    day = date.today().replace(month=1, day=10) + timedelta(days=14 * k)
                    lines = []
                    for code in ("96365", "J3490"):
                        f = fees[code]
                        c = BillingCharge(clinic_id=clinic.id, patient_id=p.id, provider_id=provider.id, service_date=day,
                                          code=code, descriptor=f.descriptor, unit_price_cents=f.price_cents,
                                          amount_cents=f.price_cents, dose="35 mg" if code == "J3490" else "",
                                          created_at=utcnow())
                        s.add(c)
                        lines.append(c)
                    s.flush()
                    inv = service.create_invoice(s, clinic.id, p.id, [c.id for c in lines], None)
                    service.record_payment(s, clinic.id, inv.id, amount_cents=inv.total_cents, method="card",
                                           key=f"bench-{inv.id}")
    ext.engine.dispose()
    return url


def bench_single(url: str, rounds: int) -> None:
    import weasyprint

    from core import create_app
    from core.db import session_scope
    from core.models import Clinic, Patient
    from plugins.billing import service

    app = create_app({"GLIA_DATABASE_URL": url, **CONFIG}, plugins=[("billing", "plugins.billing")])
    ext = app.extensions["glia"]
    ours, alone, plain = [], [], []
    with app.app_context(), session_scope(ext.engine, write=False) as s, service.hook_session(s):
        clinic = s.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
        patient = s.exec(select(Patient).where(Patient.mrn == "BN00000")).one()
        start, end = service.period_for("year", date.today())
        weasyprint.HTML(string="<p>warm</p>").write_pdf()
        for _ in range(rounds):
            t, c = time.perf_counter(), time.process_time()
            data, errors = service.build_superbill(s, clinic, patient, start, end, "year")
            assert not errors, errors
            data["extra"] = service.extra_fields(clinic, patient, data)
            html, _pdf = service.render_superbill(clinic, data, 1)
            ours.append((time.perf_counter() - t, time.process_time() - c))
            t, c = time.perf_counter(), time.process_time()
            weasyprint.HTML(string=html).write_pdf()
            alone.append((time.perf_counter() - t, time.process_time() - c))
            invoice = plain_invoice(data)
            t, c = time.perf_counter(), time.process_time()
            weasyprint.HTML(string=invoice).write_pdf()
            plain.append((time.perf_counter() - t, time.process_time() - c))
    ext.engine.dispose()
    print(f"superbill of {len(data['lines'])} service lines, {len(_pdf)} bytes; plain invoice of as many lines")
    for i, clock in enumerate(("wall", "CPU")):
        o, a, p = (statistics.median(x[i] for x in runs) for runs in (ours, alone, plain))
        print(f"superbill PDF ({clock} time, median of {rounds}): ours {o * 1000:.0f} ms, WeasyPrint alone on its "
              f"HTML {a * 1000:.0f} ms, plain invoice {p * 1000:.0f} ms -> {o / a:.2f}x its own HTML (target <= 1.15x), "
              f"{o / p:.2f}x a plain invoice (target <= 2.5x)")


def bench_batch(url: str, workdir: Path) -> float:
    from plugins.billing.cli import run_batch

    from core import create_app
    from core.db import session_scope
    from core.models import Clinic
    from plugins.billing import service
    from sqlalchemy.engine import make_url

    src = Path(make_url(url).database)
    plugins = [("billing", "plugins.billing")]
    times = {}
    for workers in (1, 2):
        copy = workdir / f"batch{workers}.db"
        shutil.copyfile(src, copy)
        curl = f"sqlite:///{copy}"
        app = create_app({"GLIA_DATABASE_URL": curl, **CONFIG}, plugins=plugins)
        with app.app_context(), session_scope(app.extensions["glia"].engine, write=False) as s:
            clinic = s.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
            pids = service.patient_ids_with_paid_services(s, clinic.id, date.today().year)
        app.extensions["glia"].engine.dispose()
        out = workdir / f"out{workers}"
        t = time.perf_counter()
        written, problems, _issued = run_batch(curl, plugins, clinic.id, date.today().year, out, pids, workers)
        times[workers] = time.perf_counter() - t
        assert not problems, problems
        print(f"batch with {workers} worker(s): {len(written)} superbills in {times[workers]:.1f} s "
              f"({len(written) / times[workers]:.2f}/s)")
    ratio = times[1] / times[2]
    print(f"batch throughput 2 workers / 1 worker -> {ratio:.2f}x (target >= 1.7x)")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=40, help="extra patients with a paid year")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    os.environ.setdefault("GLIA_ENV", "testing")  # a throwaway database: its audit key is generated; workers inherit
    workdir = Path(tempfile.mkdtemp(prefix="glia-bench-"))
    try:
        url = build_db(workdir, args.patients)
        bench_single(url, args.rounds)
        bench_batch(url, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
