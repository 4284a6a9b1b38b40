"""Redis and separate processes for tests: a Redis database per test, `glia worker`s and app servers.

A test module makes its fixture with ``yield from redis_database()``. Each subprocess builds its app from the
environment (GLIA_DATABASE_URL, GLIA_REDIS_URL) the way another host would.

Redis is expected at GLIA_TEST_REDIS_URL (default 127.0.0.1:6379). Without it the tests skip,
except under CI=true, where they fail, as a missing PostgreSQL does.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
import zlib
from pathlib import Path

import pytest
import redis

REDIS_URL = os.environ.get("GLIA_TEST_REDIS_URL", "redis://127.0.0.1:6379")
IN_CI = os.environ.get("CI", "").lower() == "true"
REPO = str(Path(__file__).resolve().parents[1])
SERVE = """  # the login rate is 3 a minute, so a test reaches it in a few requests
from werkzeug.serving import make_server
from core import create_app
app = create_app({"GLIA_ENV": "testing", "SECRET_KEY": "t" * 40, "GLIA_LOGIN_RATE": "3 per minute"})
server = make_server("127.0.0.1", 0, app, threaded=True)
print(server.port, flush=True)
server.serve_forever()
"""


def redis_database():
    """A Redis database of one test's own (one of 1-15, claimed by a marker key), flushed afterwards.

    A generator for a fixture: ``yield from redis_database()``.
    """
    token = uuid.uuid4().hex
    for n in random.sample(range(1, 16), 15):
        conn = redis.Redis.from_url(f"{REDIS_URL}/{n}", socket_connect_timeout=2)
        try:
            claimed = conn.set("glia-test-claim", token, nx=True, ex=3600) and conn.dbsize() == 1
        except redis.ConnectionError:
            if IN_CI:
                pytest.fail(f"CI=true but Redis at {REDIS_URL} does not answer")
            pytest.skip(f"Redis at {REDIS_URL} does not answer")
        if claimed:
            break
        if conn.get("glia-test-claim") == token.encode():
            conn.delete("glia-test-claim")  # the database was not empty: leave it to its owner
    else:
        pytest.fail("no free Redis database (1-15) for this test")
    yield f"{REDIS_URL}/{n}"
    conn.flushdb()
    conn.close()


def subprocess_env(db_url: str, redis_url: str) -> dict:
    return {**os.environ, "GLIA_DATABASE_URL": db_url, "GLIA_REDIS_URL": redis_url,
            "PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))}


def glia_worker(db_url: str, redis_url: str, cwd: Path, *args: str) -> subprocess.Popen:
    """`glia worker` in a subprocess, its output in a log file under ``cwd``."""
    cmd = [sys.executable, "-c", "from core.cli import main; main()", "worker", *args]
    log = open(cwd / f"worker-{time.monotonic_ns()}.log", "wb")
    return subprocess.Popen(cmd, env=subprocess_env(db_url, redis_url), cwd=cwd, stdout=log,
                            stderr=subprocess.STDOUT)


def descendants(pid: int) -> list[int]:
    """Child processes, theirs and so on (RQ's work horse and scheduler run in sessions of their own)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:  # a thread that just ended
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    """SIGTERM: a worker's warm shutdown. SIGKILL: the worker, its work horse and scheduler die at once,
    as when a host goes down."""
    if proc.poll() is not None:
        return
    if sig == signal.SIGKILL:
        for pid in [proc.pid, *descendants(proc.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        stop(proc, signal.SIGKILL)


def app_server(db_url: str, redis_url: str, cwd: Path) -> tuple[subprocess.Popen, str]:
    """An app server of its own (werkzeug, threaded) in a subprocess, like another host; (process, base URL)."""
    return app_servers(1, db_url, redis_url, cwd)[0]


def app_servers(count: int, db_url: str, redis_url: str, cwd: Path) -> list[tuple[subprocess.Popen, str]]:
    """``count`` app servers as app_server makes them, started side by side so their start-ups overlap."""
    env = subprocess_env(db_url, redis_url)
    started = []
    for _ in range(count):
        log = cwd / f"server-{len(list(cwd.glob('server-*.log')))}.log"
        proc = subprocess.Popen([sys.executable, "-c", SERVE], env=env, cwd=cwd, stdout=subprocess.PIPE,
                                stderr=log.open("wb"), text=True)
        started.append((proc, log))
    servers = []
    for proc, log in started:
        port = proc.stdout.readline().strip()
        if not port:
            for other, _log in started:
                other.kill()
                other.wait()
            raise AssertionError("an app server did not start: " + log.read_text()[-2000:])
        servers.append((proc, f"http://127.0.0.1:{port}"))
    return servers


def redis_text(url: str) -> str:
    """All keys and values of the test's Redis database as text (RQ's zlib-packed job data unpacked)."""
    conn = redis.Redis.from_url(url)
    parts = []

    def add(raw: bytes):
        try:
            raw = zlib.decompress(raw)
        except zlib.error:
            pass
        parts.append(raw.decode("utf-8", "replace"))

    for key in conn.scan_iter(count=1000):
        add(key)
        kind = conn.type(key).decode()
        if kind == "none":  # expired (RQ's short-lived keys) between the scan and this read
            continue
        values = {"string": lambda: [conn.get(key)], "list": lambda: conn.lrange(key, 0, -1),
                  "set": lambda: list(conn.smembers(key)), "zset": lambda: conn.zrange(key, 0, -1),
                  "hash": lambda: [b for kv in conn.hgetall(key).items() for b in kv],
                  "stream": lambda: [b for _id, kv in conn.xrange(key) for pair in kv.items() for b in pair]}[kind]()
        for v in values:
            add(v)
    return "\n".join(parts)


def glia_cli(db_url: str, redis_url: str, cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """A `glia` command run to its end in a subprocess, as an operator runs it on some host."""
    return subprocess.run([sys.executable, "-c", "from core.cli import main; main()", *args],
                          env=subprocess_env(db_url, redis_url), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)
