"""Glia's own tests use the fixtures Glia ships to plugin authors (core/testing.py), under their
historic short names: a real database per test (SQLite, and PostgreSQL when GLIA_TEST_POSTGRES_URL
is set), copied from a template migrated and seeded once per run and per backend.
"""
from __future__ import annotations

import os
import secrets
from importlib.metadata import entry_points

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

BUILTIN = [("billing", "plugins.billing"), ("consent", "plugins.consent"), ("coordination", "plugins.coordination")]
PG_URL = os.environ.get("GLIA_TEST_POSTGRES_URL", "")
IN_CI = os.environ.get("CI", "").lower() == "true"
BACKENDS = ["sqlite"] + (["postgres"] if PG_URL else [])  # as core.testing.backends()
# one audit key for the run, as an operator sets it: apps, production-mode CLI runs and servers share it
os.environ.setdefault("GLIA_AUDIT_KEY", secrets.token_hex(32))


def _shipped_plugin_autoloaded() -> bool:
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    return any(ep.value == "core.testing" for ep in entry_points(group="pytest11"))


# the entry point loads core.testing once glia is installed with it; until then (or with
# autoload off) this conftest loads it, so the fixtures are registered exactly once
pytest_plugins = [] if _shipped_plugin_autoloaded() else ["core.testing"]


def pytest_sessionstart(session):
    if IN_CI and not PG_URL:
        raise pytest.UsageError("CI=true but GLIA_TEST_POSTGRES_URL is not set: PostgreSQL tests would be skipped")


def _admin_engine():
    return create_engine(make_url(PG_URL).set(drivername="postgresql+psycopg", database="postgres"),
                         isolation_level="AUTOCOMMIT")


@pytest.fixture
def glia_plugins(request):
    """Glia's tests load the three built-ins, unless marked @pytest.mark.glia_plugins(...)."""
    from core.testing import MARKER, resolve

    marker = request.node.get_closest_marker(MARKER)
    return resolve(marker.args) if marker else BUILTIN


@pytest.fixture
def databases(glia_databases):
    return glia_databases


@pytest.fixture
def backend(glia_backend):
    return glia_backend


@pytest.fixture
def db_url(glia_db_url):
    return glia_db_url


@pytest.fixture
def make_app(glia_make_app):
    """Build an app on this test's database; pass ``plugins`` to choose which are loaded."""
    return glia_make_app


@pytest.fixture
def app(glia_app):
    return glia_app


@pytest.fixture
def client(app):
    """A plain test client: its posts carry no CSRF token unless the test adds one (tests/support.py)."""
    return app.test_client()


@pytest.fixture
def db(glia_db):
    """A read-only session on the test's database, for arranging and checking rows."""
    return glia_db
