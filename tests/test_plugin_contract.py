"""The plugin contract as a plugin author meets it: html that cannot leak, failures that say
where and why (and only locally say what), a versioned contract, and plugins that start off."""
from __future__ import annotations

import logging
import re
import types
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markupsafe import Markup
from sqlmodel import select

from core import create_app, formatting, hookspecs
from core.config import ConfigError
from core.db import session_scope
from core.hookspecs import hookimpl
from core.hooks import enabled_plugins, relay
from core.migrate import SchemaError
from core.models import Clinic, Patient, TreatmentSession
from core.plugin_state import save_settings
from core.plugins import PluginLoadError, build_manager
from core.slots import Blocker, NavItem, Panel, UnsafeLink, Widget, render
from tests.coordination_support import benzo_patient, write_letter
from tests.example_plugins import BUILTIN, FAULTY, careless, fresh
from tests.support import login, post
from tests.test_security_phi import CANARIES, _plant

ROOT = Path(__file__).resolve().parent.parent
CARELESS = ("careless", "tests.example_plugins.careless")
CANARY = ("canary", "tests.security_canary_plugin")
OPTIN = ("optin", "tests.example_plugins.optin")
INERT = "&lt;script&gt;alert(1)&lt;/script&gt;"


class _Scripts(HTMLParser):
    """The script elements a browser would build from a page: their src and their text."""

    def __init__(self, page: str):
        super().__init__()
        self.found: list[str] = []
        self._inside = False
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self._inside = True
            self.found.append(dict(attrs).get("src") or "")

    def handle_endtag(self, tag):
        if tag == "script":
            self._inside = False

    def handle_data(self, data):
        if self._inside:
            self.found[-1] += data


def _assert_inert(page: str, where: str) -> None:
    assert page.count(INERT) == 1, f"{where}: the careless plugin's html is not shown once as text"
    assert not [s for s in _Scripts(page).found if "alert" in s], f"{where}: a script element runs it"
    # every other plugin's Markup stays markup: the careless <p> and <script> are the only escaped tags
    assert len(re.findall(r"&lt;[a-z]", page)) == 2, f"{where}: some other part was escaped twice"


def _clinic(db, slug="stillwater") -> Clinic:
    return db.exec(select(Clinic).where(Clinic.slug == slug)).one()


# -- html that cannot leak ------------------------------------------------------------------

def test_an_fstring_script_is_shown_inert_on_chart_dashboard_session_and_letter(make_app, db, caplog):
    app = make_app(plugins=BUILTIN + [CARELESS])
    patient, _benzo, psychiatrist = benzo_patient(db)
    treatment = db.exec(select(TreatmentSession).where(TreatmentSession.patient_id == patient.id)).first()
    client = app.test_client()
    login(app, client, "clinician")
    letter_id = write_letter(app, client, patient.id, psychiatrist)
    caplog.set_level(logging.WARNING, logger="glia.plugins")

    pages = {"dashboard": client.get("/"), "chart": client.get(f"/patients/{patient.id}"),
             "session": client.get(f"/sessions/{treatment.id}"),
             "letter preview": client.get(f"/coordination/letters/{letter_id}/preview")}
    for where, page in pages.items():
        assert page.status_code == 200, where
        _assert_inert(page.text, where)
        assert "javascript:" not in page.text, where  # its nav link was refused, not shown
    assert "Careless section" in pages["letter preview"].text and "Consent and safety screening" in pages[
        "letter preview"].text
    warned = [r.getMessage() for r in caplog.records if "plain text as html" in r.getMessage()]
    assert {hook for hook in ("dashboard_widgets", "patient_chart_panels", "session_panels", "letter_sections")
            if any(f"plugin careless returned plain text as html from {hook}" in m for m in warned)} == {
        "dashboard_widgets", "patient_chart_panels", "session_panels", "letter_sections"}


def test_slot_values_keep_only_markup_as_html_and_only_safe_links():
    assert Panel("Notes", careless.PAYLOAD).html == Markup(INERT)
    assert Widget("Notes", Markup("<b>kept</b>")).html == Markup("<b>kept</b>")
    assert type(Panel(Markup("<i>title</i>"), Markup("")).title) is str  # a title is always text
    for bad in ("javascript:alert(1)", " JavaScript:alert(1)", "java\tscript:alert(1)", "data:text/html,x"):
        with pytest.raises(UnsafeLink):
            NavItem("Run", bad)
        with pytest.raises(UnsafeLink):
            Blocker("Stop", bad)
    assert NavItem("Ok", "/ratings/").url == "/ratings/" and Blocker("Ok", "https://example.org/rems").link


def test_render_gives_markup_with_every_value_escaped(app):
    with app.test_request_context():
        out = render("error.html", code=500, title=careless.PAYLOAD, message="m", detail="")
    assert isinstance(out, Markup) and INERT in out and "<h1>" in out


# -- failure semantics ----------------------------------------------------------------------

def test_a_failed_event_is_logged_with_its_plugin_and_traceback_but_not_the_patient(make_app, db, caplog):
    app = make_app(plugins=BUILTIN + [CARELESS])
    clinic = _clinic(db)
    patient = db.exec(select(Patient).where(Patient.clinic_id == clinic.id)).first()
    caplog.set_level(logging.ERROR, logger="glia.plugins")
    with app.test_request_context():
        errors = relay(clinic).fire("patient_created", clinic=clinic, patient=patient)
    assert [(e.plugin, e.hook) for e in errors] == [("careless", "patient_created")]
    assert "plugin careless raised in hook patient_created" in caplog.text
    assert "Traceback" in caplog.text and "careless.py" in caplog.text and "CarelessError" in caplog.text
    assert patient.legal_last_name not in caplog.text and str(patient.dob) not in caplog.text


def test_an_import_error_names_the_plugin_file_and_line(make_app):
    with pytest.raises(PluginLoadError) as err:
        make_app(plugins=BUILTIN + [("thirdparty", "tests.example_plugins.broken_import")])
    message = str(err.value)
    assert "'thirdparty'" in message and "glia_example_dependency_that_is_not_installed" in message
    assert re.search(r"tests/example_plugins/broken_import\.py, line 2\b", message), message


def test_a_plugin_table_without_a_migration_stops_startup_with_the_command(make_app):
    with pytest.raises(SchemaError) as err:
        make_app(plugins=BUILTIN + [("unmigrated", "tests.example_plugins.unmigrated")])
    message = str(err.value)
    assert "'unmigrated'" in message and "'unmigrated_note'" in message and "no migration creates it" in message
    assert 'glia db revision unmigrated -m "create its tables"' in message
    assert "tests/example_plugins/migrations/versions" in message  # the folder to create first


def test_exception_text_shows_on_the_failed_part_and_error_page_only_where_errors_are_shown(make_app, db, caplog):
    pid = None
    for show in (True, False):
        app = make_app(plugins=BUILTIN + [FAULTY, CANARY], GLIA_SHOW_ERRORS=show)
        pid = pid or _plant(app)
        client = app.test_client()
        login(app, client, "clinician")
        dashboard = client.get("/").text
        chart = client.get(f"/patients/{pid}").text
        boom = client.get(f"/canary/boom/{pid}")
        assert "The faulty plugin could not show its part of this page." in dashboard
        assert boom.status_code == 500 and "The error has been logged with reference" in boom.text
        shown = [("dashboard_widgets broke after writing" in dashboard), ("FaultyError" in dashboard),
                 "ValueError: panel failed for" in chart, "RuntimeError: could not draw the chart of" in boom.text,
                 "Traceback (most recent call last)" in boom.text]
        assert shown == [show] * 5, (show, shown)
    logged = caplog.text + "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert not [c for c in CANARIES if c in logged]  # what a developer sees locally never reaches the log


def test_development_shows_errors_by_default_and_production_never(db_url, monkeypatch):
    config = {"GLIA_DATABASE_URL": db_url, "SECRET_KEY": "p" * 20 + "0123456789abcdef"}
    built = [create_app({**config, "GLIA_ENV": "development"}, plugins=BUILTIN),
             create_app({**config, "GLIA_ENV": "testing"}, plugins=BUILTIN)]
    assert [a.config["GLIA_SHOW_ERRORS"] for a in built] == [True, False]
    with pytest.raises(ConfigError, match="GLIA_SHOW_ERRORS is for development only"):
        create_app({**config, "GLIA_ENV": "production", "GLIA_SHOW_ERRORS": True}, plugins=BUILTIN)
    monkeypatch.setenv("GLIA_SHOW_ERRORS", "1")
    with pytest.raises(ConfigError, match="GLIA_SHOW_ERRORS is for development only"):
        create_app({**config, "GLIA_ENV": "production"}, plugins=BUILTIN)
    monkeypatch.setenv("GLIA_SHOW_ERRORS", "maybe")
    with pytest.raises(ConfigError, match="GLIA_SHOW_ERRORS must be on or off"):
        create_app({**config, "GLIA_ENV": "testing"}, plugins=BUILTIN)
    monkeypatch.delenv("GLIA_SHOW_ERRORS")

    # a production app switched on after startup still shows nothing: the check is made on every page
    prod = create_app({**config, "GLIA_ENV": "production"}, plugins=BUILTIN + [FAULTY, CANARY])
    built.append(prod)
    prod.config["GLIA_SHOW_ERRORS"] = True
    pid = _plant(prod)
    client = prod.test_client()
    login(prod, client, "clinician")
    dashboard, boom = client.get("/").text, client.get(f"/canary/boom/{pid}")
    assert "The faulty plugin could not show its part of this page." in dashboard and "broke" not in dashboard
    assert boom.status_code == 500 and "RuntimeError" not in boom.text and "Traceback" not in boom.text
    assert "panel failed for" not in client.get(f"/patients/{pid}").text
    for a in built:
        a.extensions["glia"].engine.dispose()


# -- a versioned contract ---------------------------------------------------------------------

def _plugin(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name, f"{name}: a plugin declaring its contract.")
    for key, value in attrs.items():
        setattr(module, key, value)
    return module


@hookimpl
def _nav_items(clinic, user):
    return [NavItem("Contract", "/")]


def test_a_plugin_requiring_another_contract_is_refused_naming_both_versions():
    assert hookspecs.CONTRACT_VERSION == "1.0"
    with pytest.raises(PluginLoadError) as err:
        build_manager([("tms", _plugin("tms", GLIA_CONTRACT=">=2.0,<3", nav_items=_nav_items))])
    assert str(err.value) == ("plugin 'tms' requires Glia plugin contract <3,>=2.0, but this Glia offers contract "
                              "1.0: install a release of the plugin made for contract 1.0")
    with pytest.raises(PluginLoadError, match=r"plugin 'tms' declares GLIA_CONTRACT = 'version one'"):
        build_manager([("tms", _plugin("tms", GLIA_CONTRACT="version one"))])
    with pytest.raises(PluginLoadError, match=r"GLIA_DEFAULT_ENABLED must be True or False, not 'no'"):
        build_manager([("tms", _plugin("tms", GLIA_DEFAULT_ENABLED="no"))])
    _pm, loaded, _ = build_manager([("tms", _plugin("tms", GLIA_CONTRACT=">=1.0,<2", nav_items=_nav_items)),
                                    ("old", _plugin("old", nav_items=_nav_items))])
    assert list(loaded) == ["old", "tms"] and loaded["tms"].hooks == ["nav_items"]
    assert all(getattr(__import__(m, fromlist=["_"]), "GLIA_CONTRACT") == ">=1.0,<2"
               for _n, m in BUILTIN)  # the built-ins declare the range they were written for


def test_a_plugin_that_starts_disabled_is_off_until_an_admin_enables_it(make_app, db):
    app = make_app(plugins=BUILTIN + [OPTIN])
    stillwater, harbor = _clinic(db), _clinic(db, "harbor")
    admin = app.test_client()
    login(app, admin, "admin")
    assert ">Opt-in check</a>" not in admin.get("/").text
    listing = admin.get("/admin/plugins").text
    row = re.search(r'<tr[^>]*data-plugin="optin".*?</tr>', listing, re.S).group(0)
    assert "Enable" in row and "Disable" not in row, row
    ext = app.extensions["glia"]
    with app.app_context(), session_scope(ext.engine) as s:  # saving a clinic's settings switches nothing on
        save_settings(s, s.get(Clinic, harbor.id), "optin", {})
    with app.test_request_context():
        assert "optin" not in enabled_plugins(stillwater) and "optin" not in enabled_plugins(harbor)

    assert post(app, admin, f"/admin/plugins/optin/{stillwater.id}", {"enabled": "1"}).status_code == 302
    fresh(db)
    assert post(app, admin, "/switch-clinic", {"clinic_id": stillwater.id}).status_code == 302
    assert ">Opt-in check</a>" in admin.get("/").text  # on at stillwater, where it was switched on...
    with app.test_request_context():
        assert "optin" in enabled_plugins(_clinic(db)) and "optin" not in enabled_plugins(_clinic(db, "harbor"))
    assert post(app, admin, "/switch-clinic", {"clinic_id": harbor.id}).status_code == 302
    assert ">Opt-in check</a>" not in admin.get("/").text  # ...and nowhere else


# -- the documented contract --------------------------------------------------------------------

def _listed(doc: str, heading: str) -> set[str]:
    """The `names` on the line that starts with ``heading`` in docs/plugins.md."""
    line = next(line for line in doc.splitlines() if line.startswith(heading))
    return set(re.findall(r"`([^`]+)`", line.split(":", 1)[1]))


def test_the_documented_blocks_classes_and_filters_exist_and_none_is_left_out():
    doc = (ROOT / "docs" / "plugins.md").read_text()
    base = (ROOT / "templates" / "base.html").read_text()
    css = (ROOT / "static" / "glia.css").read_text()
    assert _listed(doc, "Template blocks of `base.html`") == set(re.findall(r"{% block (\w+) %}", base))
    assert _listed(doc, "Jinja filters") == set(formatting.FILTERS)
    classes = _listed(doc, "CSS classes")
    assert len(classes) >= 15
    assert not [c for c in classes if not re.search(rf"\.{re.escape(c.lstrip('.'))}\b", css)]
    assert f'CONTRACT_VERSION = "{hookspecs.CONTRACT_VERSION}"' in doc
    assert "## Contract version and deprecation" in doc and "## When your plugin fails" in doc
    for model in ("Clinic", "User", "Patient", "TreatmentSession", "OutsideClinician"):
        assert f"`core.models.{model}`" in doc, model
