"""`glia plugins new` writes a project that installs with pip and passes its own tests, run the
way an outside author runs them: in a venv, outside this repository, with the shipped fixtures."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from core.cli import cli

CHECKOUT = Path(__file__).resolve().parents[1]


def run(*args, cwd, env=None, timeout=300):
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


def test_new_plugin_installs_and_passes_its_own_tests(tmp_path):
    started = time.monotonic()
    project = tmp_path / "glia-tms_notes"
    result = CliRunner().invoke(cli, ["plugins", "new", "tms_notes", "--dir", str(project)])
    assert result.exit_code == 0, result.output
    assert (project / "tms_notes/migrations/versions/0001_tms_notes_table.py").is_file()

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--system-site-packages", str(venv), cwd=tmp_path)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-e"]
    run(*pip, str(CHECKOUT), cwd=tmp_path)  # the venv's glia carries the pytest11 entry point
    run(*pip, str(project), cwd=tmp_path)

    env = {k: v for k, v in os.environ.items() if k not in ("GLIA_TEST_POSTGRES_URL", "PYTEST_ADDOPTS")}
    done = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project, env=env, timeout=600)
    assert "3 passed" in done.stdout, done.stdout
    print(f"scaffold install and tests: {time.monotonic() - started:.0f} s")


def test_name_is_checked_before_anything_is_written(tmp_path):
    runner = CliRunner()
    for name, says in [("Bad-Name", "not a valid plugin name"), ("consent", "built-in Glia plugin"),
                       ("json", "would shadow"), ("class", "Python keyword")]:
        result = runner.invoke(cli, ["plugins", "new", name, "--dir", str(tmp_path / "out")])
        assert result.exit_code != 0
        assert says in result.output
    assert not (tmp_path / "out").exists()
