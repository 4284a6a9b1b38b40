"""Requests per second under gunicorn: 1 worker against 2, the chart against a bare route.

For each backend it builds a demo database (`glia demo --no-serve`), signs a clinician in,
then runs wrk against the patient chart and against a bare Flask route doing one query on
the same database, first with one gunicorn worker and then with two, and prints the
ratios side by side. wrk shares the machine's cores with the workers, so even the bare
route does not reach 2x: read the chart's ratio beside the bare route's.

Run: python bench/bench_workers.py [--seconds 10] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/glia_bench_scale]
     python bench/bench_workers.py --load 20 [--postgres ...]
       (instead: 50 clients for 20 s on 2 workers, chart reads and medication forms; then audit rows
        are counted against audited requests and `glia audit verify` runs)
"""
from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {"GLIA_ENV": "development", "GLIA_SECRET_KEY": "bench-" + "k" * 40, "GLIA_LOGIN_RATE": "100000 per minute"}


def bare_app():
    """A plain Flask app whose one route runs one query on the bench database (the reference)."""
    from flask import Flask
    from sqlalchemy import text

    from core.db import database_url, make_engine

    app = Flask("bare")
    engine = make_engine(database_url())

    @app.get("/bare")
    def bare():
        with engine.connect() as conn:
            return str(conn.execute(text("SELECT count(*) FROM clinic")).scalar())

    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(url: str) -> dict:
    return {**os.environ, **ENV, "GLIA_DATABASE_URL": url, "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}"}


def build(url: str) -> None:
    subprocess.run([sys.executable, "-c", "from core.cli import main; main()", "demo", "--no-serve"],
                   cwd=ROOT, env=_env(url), check=True, stdout=subprocess.DEVNULL)


class Server:
    """gunicorn on a free port, stopped on exit."""

    def __init__(self, url: str, app: str, workers: int):
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{self.port}",
             "--log-level", "warning", app], cwd=ROOT, env=_env(url))
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/login", timeout=2)
                return
            except urllib.error.HTTPError:
                return  # answering (the bare app has no /login)
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("gunicorn did not start")

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def sign_in(port: int, email: str = "clinician@demo.glia.example") -> tuple[str, urllib.request.OpenerDirector]:
    """A clinician's cookie header, signed in through the real form."""
    from core.demo import DEMO_PASSWORD

    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"http://127.0.0.1:{port}/login").read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    data = urllib.parse.urlencode({"csrf_token": token, "email": email, "password": DEMO_PASSWORD}).encode()
    opener.open(urllib.request.Request(f"http://127.0.0.1:{port}/login", data=data,
                                       headers={"Referer": f"http://127.0.0.1:{port}/login"}))
    return "; ".join(f"{c.name}={c.value}" for c in jar), opener


def chart_path(port: int, opener) -> str:
    listing = opener.open(f"http://127.0.0.1:{port}/patients/").read().decode()
    return re.search(r'href="(/patients/\d+)"', listing).group(1)


def wrk(url: str, seconds: int, cookie: str = "") -> float:
    """Requests/s; refuses a run that answered anything but 200."""
    cmd = ["wrk", "-t1", "-c8", f"-d{seconds}s", url]
    if cookie:
        cmd[1:1] = ["-H", f"Cookie: {cookie}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors on {url}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def measure(url: str, seconds: int) -> dict[str, dict[int, float]]:
    results: dict[str, dict[int, float]] = {"chart": {}, "bare": {}}
    for workers in (1, 2):
        with Server(url, "core:create_app()", workers) as server:
            cookie, opener = sign_in(server.port)
            path = chart_path(server.port, opener)
            wrk(f"http://127.0.0.1:{server.port}{path}", 2, cookie)  # warm up
            results["chart"][workers] = wrk(f"http://127.0.0.1:{server.port}{path}", seconds, cookie)
        with Server(url, "bench_workers:bare_app()", workers) as server:
            wrk(f"http://127.0.0.1:{server.port}/bare", 2)
            results["bare"][workers] = wrk(f"http://127.0.0.1:{server.port}/bare", seconds)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--postgres", default="", help="a PostgreSQL URL for a database this bench may drop and refill")
    parser.add_argument("--load", type=int, default=0, help="seconds of the 50-client audit load run instead")
    args = parser.parse_args()

    backends = [("sqlite", f"sqlite:///{tempfile.mkdtemp()}/bench.db")]
    if args.postgres:
        backends.append(("postgresql", args.postgres))
    for name, url in backends:
        if name == "postgresql":
            _recreate_pg(url)
        build(url)
        if args.load:
            print(f"{name:10}  {load(url, args.load)}", flush=True)
            continue
        r = measure(url, args.seconds)
        print(f"{name:10}  chart  1 worker {r['chart'][1]:8.1f} req/s   2 workers {r['chart'][2]:8.1f} req/s   "
              f"ratio {r['chart'][2] / r['chart'][1]:.2f}x   (target >= 1.7x)")
        print(f"{name:10}  bare   1 worker {r['bare'][1]:8.1f} req/s   2 workers {r['bare'][2]:8.1f} req/s   "
              f"ratio {r['bare'][2] / r['bare'][1]:.2f}x   (reference)")
        print(f"{name:10}  chart / bare with 2 workers: {r['chart'][2] / r['bare'][2]:.3f}x   (target >= 0.1x)")


def load(url: str, seconds: int, clients: int = 50) -> str:
    """50 clients on 2 workers; every answered request must have left exactly one audit row."""
    import threading
    from collections import Counter

    from sqlalchemy import create_engine, text

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    engine = create_engine(url)

    def actions() -> Counter:
        with engine.connect() as conn:
            return Counter(dict(conn.execute(text("SELECT action, count(*) FROM audit_event GROUP BY action")).all()))

    with Server(url, "core:create_app()", 2) as server:
        base = f"http://127.0.0.1:{server.port}"
        sessions = []
        for _ in range(10):
            cookie, opener = sign_in(server.port)
            path = chart_path(server.port, opener)
            token = re.search(r'name="csrf_token" value="([^"]+)"', opener.open(base + path).read().decode()).group(1)
            sessions.append((cookie, path, token))
        before = actions()
        counts = [Counter() for _ in range(clients)]
        stop = time.monotonic() + seconds

        def client(i: int) -> None:
            cookie, path, token = sessions[i % len(sessions)]
            opener = urllib.request.build_opener(NoRedirect)
            opener.addheaders = [("Cookie", cookie)]
            n = 0
            while time.monotonic() < stop:
                try:
                    if n % 4 == 3:
                        data = urllib.parse.urlencode({"csrf_token": token, "med_name": f"Load {i}-{n}",
                                                       "drug_class": "ssri", "sensitivity": "general"}).encode()
                        try:
                            opener.open(f"{base}{path}/medications", data=data)
                        except urllib.error.HTTPError as answer:
                            if answer.code != 302:
                                raise
                        counts[i]["medication.create"] += 1
                    else:
                        opener.open(base + path).read()
                        counts[i]["patient.view"] += 1
                except Exception as exc:  # noqa: BLE001 - counted, and the run reported as failed
                    counts[i]["failed: " + type(exc).__name__] += 1
                n += 1

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    done = sum(counts, Counter())
    after = actions()
    rows = {a: after[a] - before[a] for a in done if not a.startswith("failed")}
    verify = subprocess.run([sys.executable, "-c", "from core.cli import main; main()", "audit", "verify"],
                            cwd=ROOT, env=_env(url), capture_output=True, text=True)
    engine.dispose()
    same = all(rows[a] == done[a] for a in rows)
    return (f"load {clients} clients x {seconds}s: requests {dict(done)}, audit rows {rows} -> "
            f"{'equal' if same else 'DIFFERENT'}; {(verify.stdout or verify.stderr).strip()}")


def _recreate_pg(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    main()
