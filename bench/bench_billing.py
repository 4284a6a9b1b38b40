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
    """The floor: the app's invoice page (plugins/billing/templates/billing/invoice.html) as anyone
    would write it for WeasyPrint: heading, clinic and patient, one table of the superbill's lines
    (date, code, description, units, amount) and its totals; one font, default layout."""
    from html import escape

    def money(cents):
        return f"${cents / 100:,.2f}"

    rows = "".join(f"<tr><td>{x['date']}</td><td>{x['code']}</td><td>{escape(x['descriptor'])}</td>"
                   f"<td>{x['units']}</td><td>{money(x['charge_cents'])}</td></tr>" for x in data["lines"])
    totals = "".join(f"<tr><th colspan='4'>{k}</th><td>{money(v)}</td></tr>" for k, v in (
        ("Total charges", data["total_cents"]), ("Payments", data["paid_cents"]), ("Balance due", data["balance_cents"])))
    practice = data["practice"]
    return ("<!doctype html><html><head><meta charset='utf-8'><style>@page { size: letter; margin: 15mm }"
            "body { font-family: 'DejaVu Sans', sans-serif; font-size: 9pt }"
            "table { width: 100%; border-collapse: collapse } td, th { text-align: left; padding: 2pt;"
            " border-bottom: .5pt solid #ccc }</style></head><body>"
            f"<h1>Invoice</h1><p>{escape(practice['name'])}<br>{'<br>'.join(map(escape, practice['address']))}</p>"
            f"<p>Bill to: {escape(data['patient']['name'])}</p>"
            "<table><thead><tr><th>Date</th><th>Code</th><th>Description</th><th>Units</th><th>Amount</th></tr></thead>"
            f"<tbody>{rows}</tbody><tfoot>{totals}</tfoot></table></body></html>")


def build_db(workdir: Path, extra_patients: int) -> str:
    """A migrated, demo-seeded SQLite file (billing only) plus extra patients with a paid year."""
    from core import create_app, demo, migrate
    from core.db import session_scope
    from core.models import Clinic, Diagnosis, Patient, Provider, utcnow
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


def _clock(fn) -> tuple[float, float]:
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def bench_single(url: str, rounds: int) -> None:
    """Our path against WeasyPrint called plainly (a new FontConfiguration per render, as
    HTML().write_pdf() does), on our HTML and on a plain invoice; also both with one reused
    FontConfiguration, which our path does, so the floor with that saving is in view too."""
    import io

    import weasyprint
    from pypdf import PdfReader
    from weasyprint.text.fonts import FontConfiguration

    from core import create_app
    from core.db import session_scope
    from core.models import Clinic, Patient
    from plugins.billing import service

    app = create_app({"GLIA_DATABASE_URL": url, **CONFIG}, plugins=[("billing", "plugins.billing")])
    ext = app.extensions["glia"]
    runs = {k: [] for k in ("ours", "alone", "plain", "alone, reused fonts", "plain, reused fonts")}
    fonts = FontConfiguration()
    with app.app_context(), session_scope(ext.engine, write=False) as s, service.hook_session(s):
        clinic = s.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
        patient = s.exec(select(Patient).where(Patient.mrn == "BN00000")).one()
        start, end = service.period_for("year", date.today())
        weasyprint.HTML(string="<p>warm</p>").write_pdf(font_config=fonts)
        out = {}

        def ours():
            data, errors = service.build_superbill(s, clinic, patient, start, end, "year")
            assert not errors, errors
            data["extra"] = service.extra_fields(clinic, patient, data)
            out["data"] = data
            out["html"], out["pdf"] = service.render_superbill(clinic, data, 1)

        for _ in range(rounds + 1):  # the first round warms our own path and is dropped
            runs["ours"].append(_clock(ours))
            html, invoice = out["html"], plain_invoice(out["data"])
            for key, doc, config in (("alone", html, None), ("plain", invoice, None),
                                     ("alone, reused fonts", html, fonts), ("plain, reused fonts", invoice, fonts)):
                runs[key].append(_clock(lambda k=key, d=doc, f=config: out.update(
                    {k: weasyprint.HTML(string=d).write_pdf(font_config=f)})))
    ext.engine.dispose()
    pages = [len(PdfReader(io.BytesIO(out[k])).pages) for k in ("pdf", "plain")]
    print(f"superbill of {len(out['data']['lines'])} service lines ({pages[0]} page(s)); "
          f"plain invoice of as many lines ({pages[1]} page(s))")
    for i, clock in enumerate(("wall", "CPU")):
        m = {k: statistics.median(x[i] for x in v[1:]) for k, v in runs.items()}
        print(f"{clock} time, median of {rounds}: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in m.items()))
        print(f"  ours / WeasyPrint alone on our HTML -> {m['ours'] / m['alone']:.2f}x (target <= 1.15x); "
              f"ours / plain invoice -> {m['ours'] / m['plain']:.2f}x (target <= 2.5x; "
              f"{m['ours'] / m['plain, reused fonts']:.2f}x if the plain invoice reused fonts too)")


def bench_batch(url: str, workdir: Path) -> float:
    from sqlalchemy.engine import make_url

    from core import create_app
    from core.db import session_scope
    from core.models import Clinic
    from plugins.billing import service
    from plugins.billing.cli import run_batch

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
