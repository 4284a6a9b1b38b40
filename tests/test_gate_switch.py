"""Switching a safety gate off is never silent (issue 9, point 3).

A plugin that answers treatment_blockers (consent, here) is switched off for a clinic only with a
written reason and a confirmation, from the admin page or the CLI; the reason is audited, and
every session page of that clinic says the gate is off until it is switched back on.
"""
from __future__ import annotations

import html

import pytest
from click.testing import CliRunner
from sqlalchemy import event
from sqlmodel import select

from core.cli import cli
from core.models import AuditEvent, Clinic, PluginState, TreatmentSession, User
from core.plugin_state import ReasonRequired, clinic_states, gates_off, set_enabled
from tests.example_plugins import fresh
from tests.support import login, post

REASON = "EHR downtime drill, paper consent binder in use (approved by Dr. Ruiz)"


def _clinic(db, slug: str) -> Clinic:
    return db.exec(select(Clinic).where(Clinic.slug == slug)).one()


def _session_id(db, clinic: Clinic) -> int:
    return db.exec(select(TreatmentSession.id).where(TreatmentSession.clinic_id == clinic.id)
                   .order_by(TreatmentSession.id)).first()


def _consent_on(db, clinic: Clinic) -> bool:
    fresh(db)
    state = db.get(PluginState, (clinic.id, "consent"))
    return state is None or state.enabled


def _disables(db) -> list[AuditEvent]:
    fresh(db)
    return db.exec(select(AuditEvent).where(AuditEvent.action == "plugin.disabled",
                                            AuditEvent.object_id == "consent").order_by(AuditEvent.id)).all()


def _page(client, url: str) -> str:
    resp = client.get(url)
    assert resp.status_code == 200, url
    return html.unescape(resp.text)


def _switch_off(app, client, clinic: Clinic, **data):
    return post(app, client, f"/admin/plugins/consent/{clinic.id}", {"enabled": "0", **data})


def _clinician(app, local: str):
    client = app.test_client()
    login(app, client, local)
    return client


@pytest.fixture
def glia(db_url):
    def run(*args):
        return CliRunner().invoke(cli, list(args), env={"GLIA_DATABASE_URL": db_url}, catch_exceptions=False)

    return run


def test_admin_switches_consent_off_only_with_reason_and_confirmation(app, client, db):
    stillwater, harbor = _clinic(db, "stillwater"), _clinic(db, "harbor")
    login(app, client, "admin")
    row = _page(client, "/admin/plugins")
    assert "Safety gate" in row and f"/admin/plugins/consent/{stillwater.id}/disable" in row

    confirm = _page(client, f"/admin/plugins/consent/{stillwater.id}/disable")
    assert f"Sessions at {stillwater.name} will start without the consent plugin's checks" in confirm
    assert 'name="reason"' in confirm and 'name="confirm"' in confirm
    assert _consent_on(db, stillwater)  # looking at the page changes nothing

    for data, message in [({"confirm": "1"}, "Write why this safety gate is being switched off."),
                          ({"reason": REASON}, "Tick the box to confirm"),
                          ({}, "Write why this safety gate is being switched off.")]:
        resp = _switch_off(app, client, stillwater, **data)
        assert resp.status_code == 422 and message in resp.text
        assert _consent_on(db, stillwater) and _disables(db) == []

    resp = _switch_off(app, client, stillwater, reason=REASON, confirm="1")
    assert resp.status_code == 302
    assert "consent disabled for" in _page(client, "/admin/plugins")
    assert not _consent_on(db, stillwater) and _consent_on(db, harbor)
    [audited] = _disables(db)
    assert (audited.detail, audited.clinic_id, audited.role) == (REASON, stillwater.id, "admin")
    assert REASON in _page(client, "/admin/plugins")  # the admin page lists why it is off

    page = _page(_clinician(app, "clinician"), f"/sessions/{_session_id(db, stillwater)}")
    assert 'role="alert"' in page and "Safety gate off" in page
    assert "The consent plugin's pre-treatment checks are disabled for this clinic since" in page
    assert f": {REASON}" in page
    assert "Safety gate off" in _page(_clinician(app, "frontdesk"), "/")  # and the dashboard, for everyone
    harbor_page = _page(_clinician(app, "harbor.clinician"), f"/sessions/{_session_id(db, harbor)}")
    assert "Safety gate off" not in harbor_page
    assert "Safety gate off" not in _page(_clinician(app, "harbor.clinician"), "/")

    assert post(app, client, f"/admin/plugins/consent/{stillwater.id}", {"enabled": "1"}).status_code == 302
    assert _consent_on(db, stillwater)
    fresh(db)
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "plugin.enabled",
                                            AuditEvent.object_id == "consent")).all()
    assert "Safety gate off" not in _page(_clinician(app, "clinician"), f"/sessions/{_session_id(db, stillwater)}")


def test_banner_names_who_switched_the_gate_off(app, client, db):
    stillwater = _clinic(db, "stillwater")
    login(app, client, "admin")
    assert _switch_off(app, client, stillwater, reason=REASON, confirm="1").status_code == 302
    name = db.get(User, _disables(db)[-1].user_id).name
    page = _page(_clinician(app, "frontdesk"), f"/sessions/{_session_id(db, stillwater)}")
    assert f"by {name}: {REASON}" in page


@pytest.mark.parametrize("reason, status, stored", [
    ("x" * 10_000, 422, None),                              # 10 KB: refused, not cut short
    ("y" * 501, 422, None),
    ("y" * 500, 302, "y" * 500),
    ("\x00\x07\x1b\r\n\t", 422, None),                      # nothing left once control characters go
    ("Stromausfall — 停電 🙏 Ärztin", 302, "Stromausfall — 停電 🙏 Ärztin"),
    ("Drill\x00 by\r\nDr.\x1b[31m Ruiz ", 302, "Drill by Dr. [31m Ruiz"),
])
def test_odd_reasons_are_refused_or_stored_clean(app, client, db, reason, status, stored):
    stillwater = _clinic(db, "stillwater")
    login(app, client, "admin")
    resp = _switch_off(app, client, stillwater, reason=reason, confirm="1")
    assert resp.status_code == status
    if stored is None:
        assert "Reason" in resp.text or "Write why" in resp.text
        assert _consent_on(db, stillwater) and _disables(db) == []
    else:
        assert not _consent_on(db, stillwater) and _disables(db)[-1].detail == stored


def test_cli_refuses_to_switch_a_gate_off_without_a_reason(glia, app, db):
    stillwater = _clinic(db, "stillwater")
    for extra in ([], ["--reason", ""], ["--reason", " \t "]):
        out = glia("plugins", "disable", "consent", "--clinic", "stillwater", *extra)
        assert out.exit_code != 0 and "consent is a safety gate" in out.output and "--reason" in out.output
        assert _consent_on(db, stillwater) and _disables(db) == []

    out = glia("plugins", "disable", "consent", "--clinic", "stillwater", "--reason", REASON)
    assert out.exit_code == 0 and "consent disabled for stillwater." in out.output
    assert not _consent_on(db, stillwater)
    [audited] = _disables(db)
    assert (audited.detail, audited.role, audited.clinic_id) == (REASON, "system", stillwater.id)
    page = _page(_clinician(app, "clinician"), f"/sessions/{_session_id(db, stillwater)}")
    assert f"by the glia command line: {REASON}" in page

    assert glia("plugins", "enable", "consent", "--clinic", "stillwater").exit_code == 0
    assert _consent_on(db, stillwater)


def test_a_shell_cannot_switch_a_gate_off_without_a_reason(app, db):
    from core.db import session_scope

    ext = app.extensions["glia"]
    with app.app_context(), pytest.raises(ReasonRequired), session_scope(ext.engine) as s:
        set_enabled(s, s.get(Clinic, _clinic(db, "stillwater").id), "consent", False, plugins=ext.plugins)
    assert _consent_on(db, _clinic(db, "stillwater"))


def test_billing_is_no_gate_and_toggles_in_one_click(app, client, db):
    stillwater = _clinic(db, "stillwater")
    login(app, client, "admin")
    assert client.get(f"/admin/plugins/billing/{stillwater.id}/disable").status_code == 404
    assert post(app, client, f"/admin/plugins/billing/{stillwater.id}", {"enabled": "0"}).status_code == 302
    fresh(db)
    assert db.get(PluginState, (stillwater.id, "billing")).enabled is False
    assert "Safety gate off" not in _page(_clinician(app, "clinician"), f"/sessions/{_session_id(db, stillwater)}")


def test_only_admins_reach_the_switch_off_page(app, client, db):
    stillwater = _clinic(db, "stillwater")
    login(app, client, "manager")
    assert client.get(f"/admin/plugins/consent/{stillwater.id}/disable").status_code == 403
    assert _switch_off(app, client, stillwater, reason=REASON, confirm="1").status_code == 403
    assert _consent_on(db, stillwater)


def test_gates_off_costs_two_queries_whatever_the_clinic_count(app, db):
    """Read on every session page: from the plugin rows the request has already read (to know what is
    enabled), and only when a gate is off, its latest switches in two queries."""
    from core.db import session_scope

    ext = app.extensions["glia"]
    statements = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    with app.app_context():
        with session_scope(ext.engine) as s:
            for slug in ("stillwater", "harbor"):
                set_enabled(s, s.get(Clinic, _clinic(db, slug).id), "consent", False, plugins=ext.plugins,
                            reason=f"drill at {slug}")
        with session_scope(ext.engine, write=False) as s:
            harbor = s.get(Clinic, _clinic(db, "harbor").id)
            clinic_states(s, harbor)  # as enabled_plugins() has, early in every request
            event.listen(ext.engine, "before_cursor_execute", count)
            try:
                found = gates_off(s, harbor)
            finally:
                event.remove(ext.engine, "before_cursor_execute", count)
        assert [(g.plugin, g.reason, g.by) for g in found] == [("consent", "drill at harbor", "the glia command line")]
        assert len(statements) == 2
        with session_scope(ext.engine) as s:
            set_enabled(s, s.get(Clinic, harbor.id), "consent", True, plugins=ext.plugins)
        statements.clear()
        with session_scope(ext.engine, write=False) as s:
            harbor = s.get(Clinic, harbor.id)
            clinic_states(s, harbor)
            event.listen(ext.engine, "before_cursor_execute", count)
            try:
                assert gates_off(s, harbor) == []
            finally:
                event.remove(ext.engine, "before_cursor_execute", count)
    assert statements == []  # the usual case costs no query at all
