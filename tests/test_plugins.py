"""The plugin system as users and operators meet it: loading, blocking, per-clinic switching,
isolation of a faulty plugin, and the admin page."""
from __future__ import annotations

import logging
import re
import types

import pytest
from sqlmodel import select

from core.hookspecs import hookimpl
from core.hooks import relay
from core.models import AuditEvent, Clinic, Patient, PluginState, User
from core.plugins import PluginLoadError, build_manager
from tests.example_plugins import BUILTIN, fresh, ratings
from tests.example_plugins.fixtures import examples_app  # noqa: F401 - a fixture
from tests.support import login, post


def _clinics(db) -> dict[str, Clinic]:
    return {c.slug: c for c in db.exec(select(Clinic)).all()}


def _switch(app, client, clinic: Clinic):
    resp = post(app, client, "/switch-clinic", {"clinic_id": clinic.id})
    assert resp.status_code == 302


def _toggle(app, client, name: str, clinic: Clinic, enabled: bool):
    """The admin's switch; ratings answers treatment_blockers, so switching it off takes a reason."""
    confirmation = {} if enabled else {"reason": "Trying the plugin switch", "confirm": "1"}
    return post(app, client, f"/admin/plugins/{name}/{clinic.id}", {"enabled": "1" if enabled else "0", **confirmation})


# -- loading ------------------------------------------------------------------------------

def _fake_distribution(tmp_path, monkeypatch, entry_points: str):
    """An installed distribution (dist-info on sys.path) declaring "glia" entry points, as pip would."""
    info = tmp_path / "glia_examples-9.9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: glia-examples\nVersion: 9.9.9\n")
    (info / "entry_points.txt").write_text("[glia]\n" + entry_points)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_entry_points_load_in_sorted_order_and_block_list_applies(tmp_path, monkeypatch):
    _fake_distribution(tmp_path, monkeypatch,
                       "stamp = tests.example_plugins.stamp\nratings = tests.example_plugins.ratings\n")
    _pm, loaded, blocked = build_manager(None)
    assert list(loaded) == ["billing", "consent", "coordination", "fhir", "ratings", "stamp"]
    assert loaded["ratings"].version == "9.9.9"  # from the distribution that declared it
    assert loaded["ratings"].description.startswith("Visit ratings")
    assert "nav_items" in loaded["ratings"].hooks and blocked == []

    _pm, loaded, blocked = build_manager(None, blocked=["stamp"])
    assert "stamp" not in loaded and blocked == ["stamp"]


@pytest.mark.parametrize("source, cause", [
    ("tests.example_plugins.broken_import", "glia_example_dependency_that_is_not_installed"),
    ("tests.example_plugins.unknown_hook", "nav_itemz"),
])
def test_startup_stops_naming_the_plugin_and_cause(make_app, source, cause):
    with pytest.raises(PluginLoadError) as err:
        make_app(plugins=BUILTIN + [("thirdparty", source)])
    assert "'thirdparty'" in str(err.value) and cause in str(err.value)


@hookimpl
def _register_settings_that_raise():
    raise RuntimeError("settings file unreadable")


_brittle = types.ModuleType("brittle", "A plugin whose startup hook fails (say, a bad settings file).")
_brittle.register_settings = _register_settings_that_raise


def test_startup_hook_failure_names_the_plugin(make_app):
    with pytest.raises(PluginLoadError) as err:
        make_app(plugins=BUILTIN + [("brittle", _brittle)])
    assert "'brittle'" in str(err.value) and "register_settings" in str(err.value)
    assert "settings file unreadable" in str(err.value)


def test_blocked_plugin_is_not_loaded_and_shown_as_blocked(make_app):
    app = make_app(GLIA_BLOCKED_PLUGINS="coordination")
    assert "coordination" not in app.extensions["glia"].plugins
    client = app.test_client()
    login(app, client, "admin")
    page = client.get("/admin/plugins").text
    blocked_row = re.search(r'<tr class="blocked">.*?</tr>', page, re.S).group(0)
    assert "coordination" in blocked_row and "Blocked" in blocked_row
    assert 'data-plugin="coordination"' not in page


# -- per clinic ---------------------------------------------------------------------------

def test_disabled_plugin_is_never_called_for_that_clinic(examples_app, db):
    app, client = examples_app, examples_app.test_client()
    clinics = _clinics(db)
    login(app, client, "admin")
    with app.test_request_context():
        assert relay(clinics["stillwater"]) is relay(clinics["harbor"])  # same enabled set, one cached relay

    assert _toggle(app, client, "ratings", clinics["harbor"], False).status_code == 302
    fresh(db)
    state = db.get(PluginState, (clinics["harbor"].id, "ratings"))
    assert state is not None and state.enabled is False
    with app.test_request_context():
        harbor, stillwater = relay(clinics["harbor"]), relay(clinics["stillwater"])
        assert harbor is not stillwater and "ratings" not in harbor.enabled and "ratings" in stillwater.enabled
        assert harbor is relay(clinics["harbor"])  # cached

    ratings.CALLS.clear()
    _switch(app, client, clinics["harbor"])
    page = client.get("/")
    assert page.status_code == 200 and ">Ratings</a>" not in page.text and 'class="ratings-count"' not in page.text
    assert "Safety gate off" in page.text  # ratings gates treatment: its absence is announced, not silent
    assert not [c for c in ratings.CALLS if c[1].startswith("harbor")]

    _switch(app, client, clinics["stillwater"])
    page = client.get("/")
    assert ">Ratings</a>" in page.text and "Visit ratings" in page.text
    assert ("nav_items", "stillwater") in ratings.CALLS


def test_disabled_plugin_routes_404_and_return_with_data(examples_app, db):
    app, client = examples_app, examples_app.test_client()
    clinics = _clinics(db)
    harbor = clinics["harbor"]
    patient = db.exec(select(Patient).where(Patient.clinic_id == harbor.id)).first()
    login(app, client, "admin")
    _switch(app, client, harbor)
    assert post(app, client, f"/ratings/patients/{patient.id}", {"score": "4"}).status_code == 302

    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("ratings.")]
    assert {r.endpoint for r in rules} == {"ratings.index", "ratings.add", "ratings.mine"}

    def status(rule):
        url = rule.rule.replace("<int:patient_id>", str(patient.id))
        return post(app, client, url, {"score": "3"}).status_code if "POST" in rule.methods else client.get(url).status_code

    _toggle(app, client, "ratings", harbor, False)
    assert {r.endpoint: status(r) for r in rules} == {r.endpoint: 404 for r in rules}
    _switch(app, client, clinics["stillwater"])
    assert client.get("/ratings/").status_code == 200  # still on at stillwater

    _toggle(app, client, "ratings", harbor, True)
    _switch(app, client, harbor)
    page = client.get("/ratings/")
    assert page.status_code == 200 and re.search(rf"#{patient.id}</td><td class=\"num\">4<", page.text)


# -- a faulty plugin ----------------------------------------------------------------------

def test_faulty_plugin_loses_only_its_part(examples_app, db, caplog):
    app, client = examples_app, examples_app.test_client()
    caplog.set_level(logging.ERROR, logger="glia.plugins")
    login(app, client, "admin")
    page = client.get("/")
    assert page.status_code == 200
    assert ">Ratings</a>" in page.text and "Visit ratings" in page.text  # the other plugin's parts
    assert "The faulty plugin could not show its part of this page." in page.text
    assert {"nav_items", "dashboard_widgets"} <= {r.args[1] for r in caplog.records if r.args[0] == "faulty"}
    assert "plugin faulty raised in hook dashboard_widgets" in caplog.text
    fresh(db)
    assert db.exec(select(PluginState).where(PluginState.plugin == "faulty")).all() == []  # its write rolled back

    clinic = _clinics(db)["stillwater"]
    patient = db.exec(select(Patient).where(Patient.clinic_id == clinic.id)).first()
    _switch(app, client, clinic)
    chart = client.get(f"/patients/{patient.id}")
    assert chart.status_code == 200 and "Visit ratings" in chart.text and "Add rating" in chart.text
    assert "The faulty plugin could not show its part of this page." in chart.text
    admin = db.exec(select(User).where(User.email == "admin@demo.glia.example")).one()
    with app.test_request_context():
        panels, errors = relay(clinic).collect("patient_chart_panels", clinic=clinic, patient=patient, user=admin)
        assert "Visit ratings" in [p.title for p in panels] and "faulty" in [e.plugin for e in errors]
        errors = relay(clinic).fire("patient_created", clinic=clinic, patient=patient)
        assert [(e.plugin, e.hook) for e in errors] == [("faulty", "patient_created")]
    assert ("patient_created", f"stillwater:{patient.id}") in ratings.CALLS


def test_faulty_plugin_does_not_break_the_portal(examples_app, caplog):
    app, client = examples_app, examples_app.test_client()
    login(app, client, "patient")
    page = client.get("/portal/")
    assert page.status_code == 200 and "Your visit ratings" in page.text
    assert any(r.args[:2] == ("faulty", "portal_items") for r in caplog.records if r.name == "glia.plugins")


# -- the admin page -----------------------------------------------------------------------

def test_admin_page_lists_plugins_and_toggles_with_audit(examples_app, db):
    app, client = examples_app, examples_app.test_client()
    harbor = _clinics(db)["harbor"]
    login(app, client, "admin")
    page = client.get("/admin/plugins").text
    row = re.search(r'<tr data-plugin="ratings">.*?</tr>', page, re.S).group(0)
    assert "1.2.0" in row and "Visit ratings: an example third-party plugin" in row
    assert "nav_items" in row and "patient_chart_panels" in row and "treatment_completed" in row
    assert "Disable ratings for Harbor" in row

    # no CSRF token: refused, nothing changes
    resp = client.post(f"/admin/plugins/ratings/{harbor.id}", data={"enabled": "0"})
    assert resp.status_code == 400
    assert db.get(PluginState, (harbor.id, "ratings")) is None

    resp = _toggle(app, client, "ratings", harbor, False)
    assert resp.status_code == 302
    page = client.get("/admin/plugins").text
    assert "ratings disabled for Harbor" in page and "Enable ratings for Harbor" in page
    fresh(db)
    event = db.exec(select(AuditEvent).where(AuditEvent.action == "plugin.disabled")).all()[-1]
    assert (event.object_id, event.clinic_id, event.role) == ("ratings", harbor.id, "admin") and event.user_id

    assert _toggle(app, client, "nosuchplugin", harbor, False).status_code == 404
    assert _toggle(app, client, "ratings", Clinic(id=987654, slug="x", name="x"), False).status_code == 404


def test_only_admins_manage_plugins(examples_app, db):
    app, client = examples_app, examples_app.test_client()
    stillwater = _clinics(db)["stillwater"]
    login(app, client, "manager")
    assert client.get("/admin/plugins").status_code == 403
    assert _toggle(app, client, "ratings", stillwater, False).status_code == 403
    fresh(db)
    assert db.get(PluginState, (stillwater.id, "ratings")) is None
    assert ">Plugins</a>" not in client.get("/").text

