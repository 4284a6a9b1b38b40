"""Fixtures: a real database per test (SQLite, and PostgreSQL when GLIA_TEST_POSTGRES_URL is set).

A template database is migrated and filled with the demo data once per run and per backend;
each test gets a copy (a file copy on SQLite, CREATE DATABASE ... TEMPLATE on PostgreSQL),
so tests are isolated, fast, and use the real schema and real connections.
"""
from __future__ import annotations

import os
import secrets
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from core import create_app
from core.db import session_scope

BUILTIN = [("billing", "plugins.billing"), ("consent", "plugins.consent"), ("coordination", "plugins.coordination")]
PG_URL = os.environ.get("GLIA_TEST_POSTGRES_URL", "")
IN_CI = os.environ.get("CI", "").lower() == "true"

BACKENDS = ["sqlite"] + (["postgres"] if PG_URL else [])
# one audit key for the run, as an operator sets it: apps, production-mode CLI runs and servers share it
os.environ.setdefault("GLIA_AUDIT_KEY", secrets.token_hex(32))


def pytest_sessionstart(session):
    if IN_CI and not PG_URL:
        raise pytest.UsageError("CI=true but GLIA_TEST_POSTGRES_URL is not set: PostgreSQL tests would be skipped")


def _admin_engine():
    return create_engine(make_url(PG_URL).set(drivername="postgresql+psycopg", database="postgres"),
                         isolation_level="AUTOCOMMIT")


def _build(url: str, plugins, seed: bool) -> None:
    from core import demo, migrate

    app = create_app({"GLIA_ENV": "testing", "GLIA_DATABASE_URL": url, "SECRET_KEY": "t" * 40},
                     plugins=plugins, check_schema=False)
    ext = app.extensions["glia"]
    with app.app_context():
        migrate.upgrade(ext)
        if seed:
            with session_scope(ext.engine) as session:
                demo.seed(session, ext)
    ext.engine.dispose()


class Databases:
    """Makes databases for one backend: from the seeded template, or empty and migrated."""

    def __init__(self, backend: str, workdir: Path):
        self.backend = backend
        self.workdir = workdir
        self.made: list[str] = []
        self.template = self._fresh(BUILTIN, seed=True, name="template")

    def _fresh(self, plugins, seed: bool, name: str | None = None) -> str:
        name = name or f"t{uuid.uuid4().hex[:10]}"
        if self.backend == "sqlite":
            url = f"sqlite:///{self.workdir / (name + '.db')}"
        else:
            db = f"glia_test_{uuid.uuid4().hex[:10]}"
            with _admin_engine().connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{db}"'))
            self.made.append(db)
            url = make_url(PG_URL).set(drivername="postgresql+psycopg", database=db).render_as_string(hide_password=False)
        _build(url, plugins, seed)
        return url

    def copy(self) -> str:
        """A private copy of the seeded template."""
        if self.backend == "sqlite":
            src = Path(make_url(self.template).database)
            dst = self.workdir / f"t{uuid.uuid4().hex[:10]}.db"
            shutil.copyfile(src, dst)
            return f"sqlite:///{dst}"
        db = f"glia_test_{uuid.uuid4().hex[:10]}"
        template_db = make_url(self.template).database
        with _admin_engine().connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{db}" TEMPLATE "{template_db}"'))
        self.made.append(db)
        return make_url(PG_URL).set(drivername="postgresql+psycopg", database=db).render_as_string(hide_password=False)

    def empty(self, plugins) -> str:
        """A migrated database without demo data, for a custom plugin list."""
        return self._fresh(plugins, seed=False)

    def drop_all(self) -> None:
        if self.backend != "postgres" or not self.made:
            return
        with _admin_engine().connect() as conn:
            for db in self.made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))


_databases: dict[str, Databases] = {}


@pytest.fixture(scope="session")
def databases(tmp_path_factory):
    def get(backend: str) -> Databases:
        # built once per backend (setdefault would build, then discard, a template every call)
        if backend not in _databases:
            _databases[backend] = Databases(backend, tmp_path_factory.mktemp(f"db-{backend}"))
        return _databases[backend]

    yield get
    for dbs in _databases.values():
        dbs.drop_all()


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def db_url(databases, backend):
    return databases(backend).copy()


@pytest.fixture
def make_app(db_url):
    """Build an app on this test's database; pass ``plugins`` to choose which are loaded."""
    built = []

    def factory(plugins=BUILTIN, **config):
        app = create_app({"GLIA_ENV": "testing", "GLIA_DATABASE_URL": config.pop("url", db_url),
                          "SECRET_KEY": "t" * 40, "TESTING": True, "GLIA_LOGIN_RATE": "1000 per minute",
                          **config}, plugins=plugins)
        built.append(app)
        return app

    yield factory
    for app in built:
        app.extensions["glia"].engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db(app):
    """A session on the test's database, for arranging and checking rows."""
    from core.db import new_session

    session = new_session(app.extensions["glia"].engine, write=False)
    yield session
    session.close()
