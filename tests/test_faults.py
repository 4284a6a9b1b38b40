"""Crash consistency: a killed process leaves no partial rows; a failed commit reports nothing as done."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import sqlalchemy.orm
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from core.models import Clinic
from tests.security_support import audit_count, changed, engine_of, scalar, snapshot
from tests.support import login, post

ROOT = Path(__file__).resolve().parent.parent

WRITER = textwrap.dedent("""
    import sys, time
    from datetime import date
    from sqlmodel import select
    from core import audit
    from core.db import make_engine, session_scope
    from core.models import Clinic, Patient

    with session_scope(make_engine(sys.argv[1])) as s:
        clinic = s.exec(select(Clinic)).first()
        for i in range(50):
            s.add(Patient(clinic_id=clinic.id, mrn=f"KILL{i}", legal_first_name="Half",
                          legal_last_name="Written", dob=date(1980, 1, 1)))
        s.flush()
        audit.append(s, "patient.create", object_type="patient", object_id="batch")
        print("ready", flush=True)
        time.sleep(120)
""")


def test_a_process_killed_mid_transaction_leaves_no_partial_rows(app, db_url):
    audits = audit_count(app)
    app.extensions["glia"].engine.dispose()
    proc = subprocess.Popen([sys.executable, "-c", WRITER, db_url], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    assert scalar(app, "SELECT count(*) FROM patient WHERE mrn LIKE 'KILL%'") == 0
    assert audit_count(app) == audits
    if engine_of(app).dialect.name == "sqlite":
        assert scalar(app, "PRAGMA integrity_check") == "ok"
    client = app.test_client()  # the app opens and writes again
    login(app, client, "clinician")
    assert client.get("/").status_code == 200
    assert audit_count(app) > audits


def test_a_failed_commit_shows_the_error_page_and_writes_nothing(app, client, db, monkeypatch):
    clinic = db.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
    login(app, client, "admin")
    before, audits = snapshot(app), audit_count(app)

    def disk_full(self):
        raise OperationalError("COMMIT", None, Exception("database or disk is full"))

    monkeypatch.setattr(sqlalchemy.orm.Session, "commit", disk_full)
    resp = post(app, client, f"/admin/plugins/billing/{clinic.id}", {"enabled": "0"})
    monkeypatch.undo()

    assert resp.status_code == 500
    assert "Something went wrong" in resp.text and "reference" in resp.text
    assert "disabled" not in resp.text and "disk is full" not in resp.text
    assert changed(before, snapshot(app)) == [] and audit_count(app) == audits

    retry = post(app, client, f"/admin/plugins/billing/{clinic.id}", {"enabled": "0"})
    assert retry.status_code == 302
    with engine_of(app).connect() as conn:
        enabled = conn.execute(text("SELECT enabled FROM plugin_state WHERE clinic_id = :c AND plugin = 'billing'"),
                               {"c": clinic.id}).scalar()
    assert enabled in (False, 0)
