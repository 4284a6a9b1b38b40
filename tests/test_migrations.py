"""Schema and demo from the shell: migrations agree with models, upgrade builds an empty
database, startup refuses a missing, unreachable or outdated database, and `glia demo` builds
the demo where it should."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from core import create_app
from core.cli import cli
from core.migrate import SchemaError, check
from tests.conftest import BUILTIN, PG_URL
from tests.example_plugins import RATINGS, migrate

CONFIG = {"GLIA_ENV": "testing", "SECRET_KEY": "t" * 40}


def glia_shell(*args, cwd, env_extra=None, drop=()):
    """The real `glia` command in a subprocess, as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra or {})
    cmd = [shutil.which("glia")] if shutil.which("glia") else [sys.executable, "-c", "from core.cli import main; main()"]
    return subprocess.run([*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_db_check_agrees(db_url):
    out = CliRunner().invoke(cli, ["db", "check"], env={"GLIA_DATABASE_URL": db_url})
    assert out.exit_code == 0, out.output
    assert "Models and migrations agree." in out.output
    # a third-party plugin's own migrations agree with its models too
    migrate(db_url, BUILTIN + [RATINGS])
    app = create_app({**CONFIG, "GLIA_DATABASE_URL": db_url}, plugins=BUILTIN + [RATINGS])
    with app.app_context():
        assert check(app.extensions["glia"]) == []
    app.extensions["glia"].engine.dispose()


@pytest.fixture
def empty_url(backend, tmp_path):
    """A database with no tables at all."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"glia_test_empty_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(PG_URL).set(drivername="postgresql+psycopg", database="postgres"),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_URL).set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_db_upgrade_builds_an_empty_database(empty_url):
    with pytest.raises(SchemaError):
        create_app({**CONFIG, "GLIA_DATABASE_URL": empty_url}, plugins=BUILTIN)
    out = CliRunner().invoke(cli, ["db", "upgrade"], env={"GLIA_DATABASE_URL": empty_url})
    assert out.exit_code == 0, out.output
    assert out.output.startswith("Up to date: core")
    app = create_app({**CONFIG, "GLIA_DATABASE_URL": empty_url}, plugins=BUILTIN)  # starts: schema current
    engine = app.extensions["glia"].engine
    tables = set(inspect(engine).get_table_names())
    assert {"clinic", "patient", "treatment_session", "audit_event", "plugin_state", "alembic_version"} <= tables
    engine.dispose()
    check = CliRunner().invoke(cli, ["db", "check"], env={"GLIA_DATABASE_URL": empty_url})
    assert "Models and migrations agree." in check.output


def test_startup_refuses_a_database_behind_its_migrations(db_url, tmp_path):
    # a plugin whose migrations were never applied to this database
    with pytest.raises(SchemaError, match=r"behind its migrations \(ratings\).*glia db upgrade"):
        create_app({**CONFIG, "GLIA_DATABASE_URL": db_url}, plugins=BUILTIN + [RATINGS])
    # core itself behind: the CLI says so and exits non-zero
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
    engine.dispose()
    out = glia_shell("plugins", "list", cwd=tmp_path, env_extra={"GLIA_DATABASE_URL": db_url})
    assert out.returncode != 0
    assert "error: the database is behind its migrations (core): run `glia db upgrade`" in out.stderr


def test_startup_refuses_missing_or_unreachable_database(tmp_path):
    missing = tmp_path / "nowhere" / "glia.db"
    with pytest.raises(SchemaError, match="does not exist"):
        create_app({**CONFIG, "GLIA_DATABASE_URL": f"sqlite:///{missing}"}, plugins=BUILTIN)
    out = glia_shell("plugins", "list", cwd=tmp_path, env_extra={"GLIA_DATABASE_URL": f"sqlite:///{missing}"})
    assert out.returncode != 0 and f"database file {missing} does not exist" in out.stderr
    assert "Traceback" not in out.stderr
    assert not missing.exists() and not (tmp_path / "instance" / "glia.db").exists()

    unreachable = "postgresql+psycopg://postgres@127.0.0.1:9/glia"
    with pytest.raises(SchemaError, match="cannot reach the database"):
        create_app({**CONFIG, "GLIA_DATABASE_URL": unreachable}, plugins=BUILTIN)
    out = glia_shell("plugins", "list", cwd=tmp_path, env_extra={"GLIA_DATABASE_URL": unreachable})
    assert out.returncode != 0 and "error: cannot reach the database" in out.stderr


def _demo_facts(path) -> dict:
    with sqlite3.connect(path) as conn:
        q = lambda sql: [r[0] for r in conn.execute(sql)]  # noqa: E731
        return {"clinics": sorted(q("SELECT slug FROM clinic")),
                "patients": q("SELECT count(*) FROM patient")[0],
                "roles": sorted(set(q("SELECT role FROM user"))),
                "users": q("SELECT count(*) FROM user")[0]}


def test_demo_no_serve_builds_the_demo_database(tmp_path):
    here = tmp_path / "fresh-clone"
    here.mkdir()
    out = glia_shell("demo", "--no-serve", cwd=here, drop=("GLIA_DATABASE_URL",))
    assert out.returncode == 0, out.stderr
    assert "Demo database created." in out.stdout and "demo-password-2026" in out.stdout
    facts = _demo_facts(here / "instance" / "glia.db")
    assert facts["clinics"] == ["harbor", "stillwater"]
    assert facts["patients"] >= 40
    assert facts["roles"] == ["admin", "clinician", "front_desk", "manager", "patient"]

    again = glia_shell("demo", "--no-serve", cwd=here, drop=("GLIA_DATABASE_URL",))
    assert again.returncode == 0 and "already present" in again.stdout
    assert _demo_facts(here / "instance" / "glia.db") == facts

    elsewhere = tmp_path / "elsewhere.db"
    other = tmp_path / "other-dir"
    other.mkdir()
    out = glia_shell("demo", "--no-serve", cwd=other, env_extra={"GLIA_DATABASE_URL": f"sqlite:///{elsewhere}"})
    assert out.returncode == 0, out.stderr
    assert _demo_facts(elsewhere)["clinics"] == ["harbor", "stillwater"]
    assert not (other / "instance" / "glia.db").exists()


def test_demo_serves_the_sign_in_page(tmp_path):
    """`glia demo` without --no-serve really serves (Flask ignores app.run() under its CLI)."""
    import socket
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "GLIA_DATABASE_URL"}
    cmd = [shutil.which("glia")] if shutil.which("glia") else [sys.executable, "-c", "from core.cli import main; main()"]
    server = subprocess.Popen([*cmd, "demo", "--port", str(port)], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        page = ""
        while time.monotonic() < deadline and not page:
            assert server.poll() is None, "glia demo exited instead of serving"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as resp:
                    page = resp.read().decode()
            except OSError:
                time.sleep(0.5)
        assert "Sign in" in page
    finally:
        server.terminate()
        server.wait(30)


@pytest.mark.parametrize("package", ["core", "billing", "consent", "coordination"])
def test_the_newest_migration_upgrades_a_populated_database(db_url, package):
    """A clinic upgrading keeps its data: each package's newest migration runs on the demo's rows
    (on SQLite a table rebuilt under foreign keys would fail here, not on an empty database)."""
    from alembic import command

    from core.migrate import alembic_config

    app = create_app({**CONFIG, "GLIA_DATABASE_URL": db_url}, plugins=BUILTIN)
    ext = app.extensions["glia"]
    counts = "SELECT (SELECT count(*) FROM patient), (SELECT count(*) FROM treatment_session), (SELECT count(*) FROM audit_event)"
    try:
        with app.app_context():
            with ext.engine.connect() as conn:
                before = conn.execute(text(counts)).one()
            command.downgrade(alembic_config(ext, package), "-1")
            command.upgrade(alembic_config(ext, package), "head")
            assert check(ext) == []
            with ext.engine.connect() as conn:
                assert conn.execute(text(counts)).one() == before
    finally:
        ext.engine.dispose()
