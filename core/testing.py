"""Glia's pytest plugin: real, migrated databases, signed-in clients and plugin switches for tests.

Shipped with glia (entry point ``pytest11: glia``) so plugin authors test against the same
fixtures Glia's own suite uses. Every fixture is prefixed ``glia_`` so none clashes with
pytest-playwright's (``page``, ``browser``, ``base_url``...). Importing this module costs nothing:
databases are built the first time a test asks for one.

A template database is migrated for the chosen plugins and filled with the demo data once per
run, backend and plugin list; each test gets a copy (a file copy on SQLite, ``CREATE DATABASE
... TEMPLATE`` on PostgreSQL). PostgreSQL joins SQLite when GLIA_TEST_POSTGRES_URL names a server.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

PG_ENV = "GLIA_TEST_POSTGRES_URL"
MARKER = "glia_plugins"
TEST_CONFIG = {"GLIA_ENV": "testing", "SECRET_KEY": "t" * 40}


def pytest_configure(config):
    config.addinivalue_line("markers", f"{MARKER}(*plugins): the plugins the test's Glia app loads, "
                                       "by entry-point name or as (name, module) pairs")


def backends() -> list[str]:
    """SQLite always; PostgreSQL too when GLIA_TEST_POSTGRES_URL is set."""
    return ["sqlite"] + (["postgres"] if os.environ.get(PG_ENV) else [])


def installed_plugins() -> list[tuple[str, str]]:
    """Every installed "glia" entry point as (name, module), the list a deployment would load."""
    from importlib.metadata import entry_points

    return sorted((ep.name, ep.value) for ep in entry_points(group="glia"))


def resolve(plugins) -> list[tuple]:
    """Names become (name, module) through the installed entry points; pairs pass through."""
    known = None
    out = []
    for item in plugins:
        if isinstance(item, str):
            known = dict(installed_plugins()) if known is None else known
            if item not in known:
                raise pytest.UsageError(f"glia_plugins: no installed plugin named {item!r} "
                                        f"(installed: {', '.join(known) or 'none'})")
            item = (item, known[item])
        out.append(tuple(item))
    return out


def migrate(url: str, plugins, *, seed: bool = False) -> None:
    """Bring the database at ``url`` to head for core and ``plugins``; ``seed`` adds the demo data."""
    from core import create_app, demo
    from core import migrate as migrations
    from core.db import session_scope

    app = create_app({**TEST_CONFIG, "GLIA_DATABASE_URL": url}, plugins=plugins, check_schema=False)
    ext = app.extensions["glia"]
    try:
        with app.app_context():
            migrations.upgrade(ext)
            if seed:
                with session_scope(ext.engine) as session:
                    demo.seed(session, ext)
    finally:
        ext.engine.dispose()


class Databases:
    """Makes databases for one backend: copies of a seeded template per plugin list, or empty ones."""

    def __init__(self, backend: str, workdir: Path):
        self.backend = backend
        self.workdir = workdir
        self.made: list[str] = []
        self.templates: dict[tuple, str] = {}

    def _admin_engine(self):
        from sqlalchemy import create_engine

        return create_engine(self._pg_url("postgres"), isolation_level="AUTOCOMMIT")

    def _pg_url(self, database: str) -> str:
        from sqlalchemy.engine import make_url

        return (make_url(os.environ[PG_ENV]).set(drivername="postgresql+psycopg", database=database)
                .render_as_string(hide_password=False))

    def _create(self, template: str | None = None) -> str:
        name = f"t{uuid.uuid4().hex[:10]}"
        if self.backend == "sqlite":
            path = self.workdir / f"{name}.db"
            if template:
                from sqlalchemy.engine import make_url

                shutil.copyfile(make_url(template).database, path)
            return f"sqlite:///{path}"
        from sqlalchemy import text
        from sqlalchemy.engine import make_url

        db = f"glia_test_{name[1:]}"
        clause = f' TEMPLATE "{make_url(template).database}"' if template else ""
        engine = self._admin_engine()
        try:
            with engine.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{db}"{clause}'))
        finally:
            engine.dispose()
        self.made.append(db)
        return self._pg_url(db)

    def template(self, plugins) -> str:
        """The seeded template for ``plugins``, built on first use."""
        plugins = resolve(plugins)
        key = tuple((name, getattr(module, "__name__", module)) for name, module in plugins)
        if key not in self.templates:
            url = self._create()
            migrate(url, plugins, seed=True)
            self.templates[key] = url
        return self.templates[key]

    def copy(self, plugins) -> str:
        """A private copy of the seeded template for ``plugins``."""
        return self._create(self.template(plugins))

    def empty(self, plugins) -> str:
        """A migrated database without demo data."""
        url = self._create()
        migrate(url, resolve(plugins))
        return url

    def drop_all(self) -> None:
        if self.backend != "postgres" or not self.made:
            return
        from sqlalchemy import text

        engine = self._admin_engine()
        with engine.connect() as conn:
            for db in self.made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        engine.dispose()


def _client_class():
    from flask.testing import FlaskClient

    class GliaClient(FlaskClient):
        """A test client whose posts carry a valid CSRF token, as the browser's forms do."""

        def csrf_token(self) -> str:
            from itsdangerous import URLSafeTimedSerializer

            with self.session_transaction() as sess:
                raw = sess.setdefault("csrf_token", uuid.uuid4().hex)
            return URLSafeTimedSerializer(self.application.secret_key, salt="wtf-csrf-token").dumps(raw)

        def post(self, *args, **kw):
            data = kw.get("data")
            if "json" not in kw and (data is None or isinstance(data, dict)) and "csrf_token" not in (data or {}):
                kw["data"] = {"csrf_token": self.csrf_token(), **(data or {})}
            return super().post(*args, **kw)

        def login(self, email: str, password: str | None = None):
            """Sign in through the real form; a demo user may be named by local part ("clinician")."""
            from core.demo import DEMO_PASSWORD

            if "@" not in email:
                email = f"{email}@demo.glia.example"
            resp = self.post("/login", data={"email": email, "password": password or DEMO_PASSWORD})
            assert resp.status_code == 302, f"login as {email} failed ({resp.status_code})"
            return resp

    return GliaClient


_databases: dict[str, Databases] = {}


@pytest.fixture(scope="session")
def glia_databases(tmp_path_factory):
    """backend -> Databases, built lazily; PostgreSQL databases made in the run are dropped after it."""
    def get(backend: str) -> Databases:
        if backend not in _databases:
            _databases[backend] = Databases(backend, tmp_path_factory.mktemp(f"glia-{backend}"))
        return _databases[backend]

    yield get
    for dbs in _databases.values():
        dbs.drop_all()
    _databases.clear()


@pytest.fixture(params=backends())
def glia_backend(request):
    """"sqlite", then "postgres" when GLIA_TEST_POSTGRES_URL is set: each test runs on both."""
    return request.param


@pytest.fixture
def glia_plugins(request):
    """The app's plugins: the test's @pytest.mark.glia_plugins(...), else every installed plugin.

    Override this fixture in a conftest.py to change the default for a whole directory.
    """
    marker = request.node.get_closest_marker(MARKER)
    return resolve(marker.args) if marker else installed_plugins()


@pytest.fixture
def glia_db_url(glia_databases, glia_backend, glia_plugins):
    """This test's own database: a copy of the demo template migrated for ``glia_plugins``."""
    return glia_databases(glia_backend).copy(glia_plugins)


@pytest.fixture
def glia_make_app(glia_db_url, glia_plugins):
    """Build apps on this test's database: ``glia_make_app(plugins=..., **config)``."""
    from core import create_app

    built = []

    def factory(plugins=None, **config):
        app = create_app({**TEST_CONFIG, "GLIA_DATABASE_URL": config.pop("url", glia_db_url), "TESTING": True,
                          "GLIA_LOGIN_RATE": "1000 per minute", **config},
                         plugins=glia_plugins if plugins is None else resolve(plugins))
        built.append(app)
        return app

    yield factory
    for app in built:
        app.extensions["glia"].engine.dispose()


@pytest.fixture
def glia_app(glia_make_app):
    return glia_make_app()


@pytest.fixture
def glia_client(glia_app):
    """``glia_client("clinician")``: a client signed in as that demo user; no argument, signed out.

    Its ``.post`` adds the CSRF token; ``.login(email)`` signs in through the real form.
    """
    cls = _client_class()

    def make(user: str | None = None):
        client = cls(glia_app, glia_app.response_class, use_cookies=True)
        if user:
            client.login(user)
        return client

    return make


@pytest.fixture
def glia_db(glia_app):
    """A read-only session on the test's database, for arranging checks and reading results.

    On SQLite its transactions are deferred, so it never holds the write lock the app needs;
    call ``glia_db.rollback()`` to see what requests committed since it last read.
    """
    from core.db import new_session

    session = new_session(glia_app.extensions["glia"].engine, write=False)
    yield session
    session.close()


@pytest.fixture
def glia_enable_plugin(glia_app):
    """``glia_enable_plugin("ratings", "harbor", enabled=False, reason="")``: switch a plugin for a
    clinic (by slug, default the first demo clinic) through core.plugin_state, audited as the app does."""
    from sqlmodel import select

    from core.db import session_scope
    from core.models import Clinic
    from core.plugin_state import set_enabled

    ext = glia_app.extensions["glia"]

    def switch(plugin: str, clinic: str | None = None, *, enabled: bool = True, reason: str = "") -> bool:
        with glia_app.app_context(), session_scope(ext.engine) as session:
            query = select(Clinic).order_by(Clinic.id)
            found = session.exec(query.where(Clinic.slug == clinic) if clinic else query).first()
            if found is None:
                raise LookupError(f"no clinic {clinic!r}")
            return set_enabled(session, found, plugin, enabled, plugins=ext.plugins, reason=reason)

    return switch


@pytest.fixture
def glia_url(glia_app):
    """``glia_app`` served on a free loopback port in a thread, for a real browser; yields its base URL."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, glia_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)
