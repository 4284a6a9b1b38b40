"""`glia plugins ...` and `glia init` from the shell, against the test's database."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from sqlmodel import select

from core.cli import cli
from core.models import AuditEvent, Clinic, Membership, PluginState, Role, User
from tests.example_plugins import fresh
from tests.support import login


@pytest.fixture
def glia(db_url):
    """Run a `glia` subcommand in-process with GLIA_DATABASE_URL pointing at the test database."""
    def run(*args):
        return CliRunner().invoke(cli, list(args), env={"GLIA_DATABASE_URL": db_url}, catch_exceptions=False)

    return run


def _state(db, slug, plugin):
    fresh(db)
    clinic = db.exec(select(Clinic).where(Clinic.slug == slug)).one()
    return db.get(PluginState, (clinic.id, plugin))


def test_plugins_list_enable_disable(glia, db):
    out = glia("plugins", "list")
    assert out.exit_code == 0, out.output
    assert "coordination" in out.output and "hooks: " in out.output
    assert "clinics: harbor:on, stillwater:on" in out.output

    out = glia("plugins", "disable", "coordination", "--clinic", "harbor")
    assert out.exit_code == 0 and "coordination disabled for harbor." in out.output
    assert _state(db, "harbor", "coordination").enabled is False
    assert _state(db, "stillwater", "coordination") is None
    event = db.exec(select(AuditEvent).where(AuditEvent.action == "plugin.disabled")).all()[-1]
    assert (event.object_id, event.role) == ("coordination", "system")
    listed = glia("plugins", "list").output
    coordination = listed[listed.index("coordination"):]
    assert "harbor:off, stillwater:on" in coordination.splitlines()[2]

    out = glia("plugins", "enable", "coordination", "--clinic", "harbor")
    assert out.exit_code == 0 and _state(db, "harbor", "coordination").enabled is True


@pytest.mark.parametrize("args, message", [
    (("plugins", "disable", "nosuch", "--clinic", "harbor"), "no loaded plugin named 'nosuch'"),
    (("plugins", "enable", "coordination", "--clinic", "atlantis"), "no clinic with slug 'atlantis'"),
])
def test_plugins_toggle_refuses_unknown_names(glia, db, args, message):
    out = glia(*args)
    assert out.exit_code != 0 and message in out.output
    assert _state(db, "harbor", "coordination") is None


def test_broken_installed_plugin_stops_the_command(tmp_path):
    """A pip-installed plugin that fails to import: `glia` says which and why, and exits non-zero."""
    info = tmp_path / "glia_broken-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: glia-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[glia]\nbroken = tests.example_plugins.broken_import\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), root, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", "from core.cli import main; main()", "plugins", "list"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "plugin 'broken' failed to import at " in out.stderr  # where, in the plugin's own file
    assert "broken_import.py, line 2: ModuleNotFoundError" in out.stderr


def test_init_creates_a_clinic_and_its_first_admin(glia, make_app, db):
    password = "cedar-grove-lantern-2026"
    args = ["init", "--clinic-name", "Cedar Clinic", "--slug", "cedar", "--timezone", "America/Chicago",
            "--admin-email", "Pat.Boss@cedar.example", "--admin-name", "Pat Boss", "--admin-password", password]
    out = glia(*args)
    assert out.exit_code == 0, out.output
    fresh(db)
    clinic = db.exec(select(Clinic).where(Clinic.slug == "cedar")).one()
    user = db.exec(select(User).where(User.email == "pat.boss@cedar.example")).one()
    assert (clinic.name, clinic.timezone, user.role) == ("Cedar Clinic", "America/Chicago", Role.admin)
    assert db.get(Membership, (user.id, clinic.id)) is not None

    app = make_app()
    client = app.test_client()
    login(app, client, "pat.boss@cedar.example", password)
    assert "Cedar Clinic" in client.get("/").text

    again = glia(*args)
    assert again.exit_code != 0 and "a clinic with slug 'cedar' exists already" in again.output
    weak = glia(*args[:-1], "short")
    assert weak.exit_code != 0 and "at least 12 characters" in weak.output
