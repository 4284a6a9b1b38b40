"""Page speed as the clinic grows, and what plugins cost (issue 11, point 6).

For each size (by default 1,000 patients with 20,000 sessions, and 100,000 with 2,000,000), on
SQLite and, with --postgres, on PostgreSQL: builds the demo once per backend, copies it, grows
the copy with core.demo_bulk (what `glia demo --patients N --sessions M` runs; build time
printed), then measures through the real app (Flask test client, one thread):
- median and 95th percentile of repeated requests for the dashboard, the patient list, a search
  by full name, the chart of the patient with the longest history, and the portal home of the
  demo's portal patient, against the 50 ms target;
- SQL statements per request (target about 15, not growing with the data);
- each page with all three plugins loaded against none (target within 1.3x), timed alternately.

Run: python bench/bench_pages.py [--sizes 1000:20000,100000:2000000] [--repeat 25] \\
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/glia_bench_pages]
The PostgreSQL database named there, and one per size beside it (<name>_<patients>), are
dropped and rebuilt, and dropped again at the end.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from core import create_app, demo_bulk
from core.db import session_scope
from tests.support import login, post

BUILTIN = [("billing", "plugins.billing"), ("consent", "plugins.consent"), ("coordination", "plugins.coordination")]
CONFIG = {"GLIA_ENV": "testing", "SECRET_KEY": "b" * 40, "GLIA_LOGIN_RATE": "1000 per minute"}
PAGES = ["dashboard", "patient list", "search", "chart", "portal"]


def build(url: str) -> None:
    """The demo as `glia demo` makes it: migrated, then seeded with every plugin's part."""
    from core import demo, migrate

    app = create_app({**CONFIG, "GLIA_DATABASE_URL": url}, plugins=BUILTIN, check_schema=False)
    ext = app.extensions["glia"]
    with app.app_context():
        migrate.upgrade(ext)
        with session_scope(ext.engine) as session:
            demo.seed(session, ext)
    ext.engine.dispose()


def grow(url: str, patients: int, sessions: int) -> tuple[demo_bulk.Growth, float]:
    """Grow stillwater in bulk; returns what was added and the seconds it took, commit included."""
    app = create_app({**CONFIG, "GLIA_DATABASE_URL": url}, plugins=BUILTIN)
    engine = app.extensions["glia"].engine
    started = time.perf_counter()
    with app.app_context(), session_scope(engine) as session:
        grown = demo_bulk.grow(session, patients, sessions)
    seconds = time.perf_counter() - started
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))  # what autovacuum does soon after a bulk load
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()  # SQLite keeps its statistics in tables: uncommitted, they are rolled back
    engine.dispose()
    return grown, seconds


class Pages:
    """One app (one plugin list) on one database, with a clinician and the portal patient signed in."""

    def __init__(self, url: str, plugins, grown: demo_bulk.Growth):
        self.app = create_app({**CONFIG, "GLIA_DATABASE_URL": url}, plugins=plugins)
        self.engine = self.app.extensions["glia"].engine
        self.statements = 0
        event.listen(self.engine, "before_cursor_execute", self._count)
        staff, patient = self.app.test_client(), self.app.test_client()
        login(self.app, staff, "clinician")
        login(self.app, patient, "patient")
        self.fetch = {
            "dashboard": lambda: staff.get("/"),
            "patient list": lambda: staff.get("/patients/"),
            "search": lambda: post(self.app, staff, "/patients/", {"q": grown.busy_patient_name}),
            "chart": lambda: staff.get(f"/patients/{grown.busy_patient_id}"),
            "portal": lambda: patient.get("/portal/"),
        }

    def _count(self, *_args):
        self.statements += 1

    def once(self, page: str) -> tuple[float, int]:
        """(milliseconds, SQL statements) for one request of ``page``."""
        self.statements = 0
        started = time.perf_counter()
        resp = self.fetch[page]()
        ms = (time.perf_counter() - started) * 1000
        assert resp.status_code == 200, (page, resp.status_code)
        return ms, self.statements


def measure(url: str, grown: demo_bulk.Growth, repeat: int) -> dict[str, dict]:
    """page -> median, p95, SQL statements (all plugins) and the all/none ratio of medians."""
    every, bare = Pages(url, BUILTIN, grown), Pages(url, [], grown)
    results = {}
    for page in PAGES:
        every.once(page)  # warm: templates compiled, caches filled
        bare.once(page)
        timed, untimed = [], []
        for _ in range(repeat):
            ms, statements = every.once(page)
            timed.append(ms)
            untimed.append(bare.once(page)[0])
        results[page] = {"median": statistics.median(timed), "p95": statistics.quantiles(timed, n=20)[18],
                         "sql": statements, "ratio": statistics.median(timed) / statistics.median(untimed)}
    every.engine.dispose()
    bare.engine.dispose()
    return results


def _pg(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _pg_admin(url: str):
    return create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")


def databases(tmp: Path, postgres: str | None, sizes):
    """backend -> (base url, {patients: url}): the seeded demo once, then a copy per size."""
    out = {}
    base = f"sqlite:///{tmp / 'demo.db'}"
    build(base)
    copies = {}
    for patients, _ in sizes:
        shutil.copyfile(tmp / "demo.db", tmp / f"grown_{patients}.db")
        copies[patients] = f"sqlite:///{tmp / f'grown_{patients}.db'}"
    out["SQLite"] = copies
    if postgres:
        name = make_url(postgres).database
        admin = _pg_admin(postgres)
        with admin.connect() as conn:
            for db in [name] + [f"{name}_{p}" for p, _ in sizes]:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        build(postgres)
        with admin.connect() as conn:
            for patients, _ in sizes:
                conn.execute(text(f'CREATE DATABASE "{name}_{patients}" TEMPLATE "{name}"'))
        admin.dispose()
        out["PostgreSQL"] = {p: _pg(postgres, f"{name}_{p}") for p, _ in sizes}
    return out


def drop_postgres(postgres: str, sizes) -> None:
    name = make_url(postgres).database
    admin = _pg_admin(postgres)
    with admin.connect() as conn:
        for db in [name] + [f"{name}_{p}" for p, _ in sizes]:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
    admin.dispose()


def table(results, sizes, repeat: int) -> str:
    """Sizes side by side; a row per backend and page."""
    head = f"{'':10} {'':12}" + "".join(f" | {f'{p:,} patients, {s:,} sessions':^37}" for p, s in sizes)
    cols = f"{'backend':10} {'page':12}" + f" | {'median':>8} {'p95':>8} {'SQL':>5} {'all/none':>12}" * len(sizes)
    lines = [f"Pages in process, {repeat} requests each (ms); SQL statements per request (all plugins)",
             head, cols, "-" * len(cols)]
    for backend, by_size in results.items():
        for page in PAGES:
            cells = "".join(f" | {r['median']:8.1f} {r['p95']:8.1f} {r['sql']:5d} {r['ratio']:11.2f}x"
                            for r in (by_size[p][page] for p, _ in sizes))
            lines.append(f"{backend:10} {page:12}{cells}")
    return "\n".join(lines)


def _sizes(text_: str) -> list[tuple[int, int]]:
    return [tuple(int(n) for n in part.split(":")) for part in text_.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_sizes, default=_sizes("1000:20000,100000:2000000"),
                        help="patients:sessions, comma separated")
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--postgres", help="a PostgreSQL URL whose database may be dropped and rebuilt")
    args = parser.parse_args()
    results, builds = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for backend, urls in databases(Path(tmp), args.postgres, args.sizes).items():
                results[backend] = {}
                for patients, sessions in args.sizes:
                    grown, seconds = grow(urls[patients], patients, sessions)
                    builds.append(f"  {backend:10} {patients:>9,} patients {sessions:>11,} sessions "
                                  f"{grown.scores:>9,} scores   {seconds:7.1f} s")
                    print("built", builds[-1].strip(), file=sys.stderr, flush=True)
                    results[backend][patients] = measure(urls[patients], grown, args.repeat)
        finally:
            if args.postgres:
                drop_postgres(args.postgres, args.sizes)
    print("\nBulk growth (core.demo_bulk, one transaction, commit included):")
    print("\n".join(builds))
    print()
    print(table(results, args.sizes, args.repeat))


if __name__ == "__main__":
    main()
