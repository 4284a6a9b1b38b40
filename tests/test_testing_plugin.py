"""The fixtures Glia ships to plugin authors (core/testing.py), as an author relies on them."""
from __future__ import annotations

import time

import pytest
from sqlmodel import func, select

from core.models import AuditEvent, Clinic, PluginState
from core.plugin_state import ReasonRequired


def test_read_session_never_holds_up_a_request(glia_client, glia_db):
    glia_db.exec(select(Clinic)).all()  # a read: the session's transaction stays open
    before = glia_db.exec(select(func.count()).select_from(AuditEvent)).one()
    started = time.monotonic()
    glia_client("clinician")  # signing in writes (its audit row) while that transaction is open
    assert time.monotonic() - started < 10, "the request waited for the fixture's session"
    glia_db.rollback()
    assert glia_db.exec(select(func.count()).select_from(AuditEvent)).one() > before


def test_client_posts_carry_the_csrf_token(glia_client):
    client = glia_client("manager")
    assert client.get("/").status_code == 200
    assert client.post("/logout").status_code == 302
    assert client.get("/").status_code == 302  # signed out: back to the login page


def test_enable_plugin_switches_per_clinic_and_audits(glia_client, glia_enable_plugin, glia_db):
    client = glia_client("manager")
    assert glia_enable_plugin("billing", "stillwater", enabled=False) is True
    assert client.get("/billing/").status_code == 404
    glia_enable_plugin("billing", "stillwater")
    assert client.get("/billing/").status_code != 404
    with pytest.raises(ReasonRequired):
        glia_enable_plugin("consent", enabled=False)  # a safety gate, as on the admin page
    glia_db.rollback()
    actions = glia_db.exec(select(AuditEvent.action).where(AuditEvent.object_id == "billing")).all()
    assert actions[-2:] == ["plugin.disabled", "plugin.enabled"]
    assert glia_db.exec(select(PluginState).where(PluginState.plugin == "consent")).first() is None


@pytest.mark.glia_plugins("billing", ("ratings", "tests.example_plugins.ratings"))
def test_marker_chooses_the_plugin_list(glia_plugins):
    assert glia_plugins == [("billing", "plugins.billing"), ("ratings", "tests.example_plugins.ratings")]


def test_unknown_plugin_name_is_a_clear_usage_error():
    from core.testing import resolve

    with pytest.raises(pytest.UsageError, match="no installed plugin named 'nope'"):
        resolve(["nope"])
