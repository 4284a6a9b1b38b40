"""One gate for every path into "in progress": the web form, a plugin's CLI command, `glia shell`,
the workflow functions called directly, and a plain ORM write. Each is refused while a blocker
stands, and each attempt leaves an audit row."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from markupsafe import escape
from sqlmodel import select

from core import workflow
from core.db import session_scope
from core.models import AuditEvent, SessionStatus, TreatmentSession
from tests.example_plugins import fresh
from tests.support import login, post

S = SessionStatus
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def blocked(app, db):
    """A checked-in session of the demo that the gate refuses today (a consent is missing), with its reasons."""
    with app.app_context(), session_scope(app.extensions["glia"].engine, write=False) as s:
        for t in s.exec(select(TreatmentSession).where(TreatmentSession.status == S.checked_in)
                        .order_by(TreatmentSession.id)).all():
            from core.models import Clinic, Patient
            reasons = workflow.start_reasons(s, s.get(Clinic, t.clinic_id), s.get(Patient, t.patient_id), t)
            if reasons:
                return t.id, [r.reason for r in reasons]
    pytest.fail("the demo has no checked-in session that the gate refuses")


def _status_and_denials(db, tid):
    fresh(db)
    t = db.get(TreatmentSession, tid)
    denied = db.exec(select(AuditEvent).where(AuditEvent.action == "session.start", AuditEvent.object_id == str(tid),
                                              AuditEvent.outcome == "denied")).all()
    return t.status, len(denied)


def test_the_web_form_refuses_and_audits(app, db, blocked):
    tid, reasons = blocked
    client = app.test_client()
    login(app, client, "clinician")
    t = db.get(TreatmentSession, tid)
    resp = post(app, client, f"/sessions/{tid}/start", {"version": t.version})
    assert resp.status_code == 409 and str(escape(reasons[0])) in resp.text
    assert _status_and_denials(db, tid) == (S.checked_in, 1)


def test_a_shell_call_to_the_workflow_runs_the_same_gate(app, db, blocked):
    """A developer in `glia shell` calling workflow.start or workflow.move gets the same refusal."""
    tid, reasons = blocked
    for call in (lambda s, t: workflow.start(s, t, t.version), lambda s, t: workflow.move(s, t, S.in_progress, t.version)):
        with app.app_context(), session_scope(app.extensions["glia"].engine) as s:
            t = s.get(TreatmentSession, tid)
            with pytest.raises(workflow.Blocked) as refused:
                call(s, t)
            assert [r.reason for r in refused.value.reasons] == reasons
    assert _status_and_denials(db, tid) == (S.checked_in, 2)
    row = db.exec(select(AuditEvent).where(AuditEvent.object_id == str(tid), AuditEvent.outcome == "denied")).first()
    assert row.role == "system" and row.patient_id is not None


def test_setting_the_status_directly_is_refused(app, db, blocked):
    """A plugin or a shell user who writes status themselves is stopped before anything reaches the database."""
    tid, _ = blocked
    for status in (S.in_progress, S.monitoring, S.discharged):
        with app.app_context(), pytest.raises(workflow.GateBypass):
            with session_scope(app.extensions["glia"].engine) as s:
                t = s.get(TreatmentSession, tid)
                t.status = status
    with app.app_context(), pytest.raises(workflow.GateBypass):  # a new row born in progress
        with session_scope(app.extensions["glia"].engine) as s:
            t = s.get(TreatmentSession, tid)
            s.add(TreatmentSession(clinic_id=t.clinic_id, patient_id=t.patient_id, provider_id=t.provider_id,
                                   modality=t.modality, scheduled_at=t.scheduled_at, status=S.in_progress))
    assert _status_and_denials(db, tid) == (S.checked_in, 0)
    assert len(db.exec(select(TreatmentSession).where(TreatmentSession.status == S.in_progress)).all()) == 0


def test_a_start_that_passes_the_gate_is_audited_too(app, db):
    ready = next(t for t in db.exec(select(TreatmentSession).where(TreatmentSession.status == S.checked_in)).all()
                 if not _reasons(app, t.id))
    with app.app_context(), session_scope(app.extensions["glia"].engine) as s:
        workflow.start(s, s.get(TreatmentSession, ready.id), ready.version)
    fresh(db)
    assert db.get(TreatmentSession, ready.id).status == S.in_progress
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "session.start", AuditEvent.outcome == "ok",
                                            AuditEvent.object_id == str(ready.id))).one()


def _reasons(app, tid):
    from core.models import Clinic, Patient
    with app.app_context(), session_scope(app.extensions["glia"].engine, write=False) as s:
        t = s.get(TreatmentSession, tid)
        return workflow.start_reasons(s, s.get(Clinic, t.clinic_id), s.get(Patient, t.patient_id), t)


def _glia(db_url, tmp_path, *args, stdin=None):
    """Run the installed `glia` command in its own process, with the autostart plugin installed."""
    info = tmp_path / "glia_autostart-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: glia-autostart\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[glia]\nautostart = tests.example_plugins.autostart\n")
    env = {**os.environ, "GLIA_DATABASE_URL": db_url, "GLIA_ENV": "development",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", "from core.cli import main; main()", *args], input=stdin,
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)


def test_a_plugin_cli_command_and_glia_shell_are_refused(db_url, tmp_path, db, blocked, app):
    tid, _ = blocked
    out = _glia(db_url, tmp_path, "autostart", str(tid))
    assert out.returncode != 0 and "refused:" in out.stderr and "started" not in out.stdout, out.stderr
    script = ("from core import workflow\nfrom core.db import get_session\nfrom core.models import TreatmentSession\n"
              f"s = get_session(); t = s.get(TreatmentSession, {tid})\n"
              "try:\n    workflow.move(s, t, workflow.S.in_progress, t.version); s.commit(); print('STARTED')\n"
              "except workflow.Blocked as e:\n    print('BLOCKED', len(e.reasons))\n\n")
    out = _glia(db_url, tmp_path, "shell", stdin=script)
    assert "BLOCKED" in out.stdout and "STARTED" not in out.stdout, out.stdout + out.stderr
    assert _status_and_denials(db, tid) == (S.checked_in, 2)


def test_dose_limits_and_the_observation_clock_hold_from_a_shell(app, db):
    """Someone in `glia shell` who doses 100 mg of esketamine, or discharges at once, is refused."""
    from datetime import timedelta

    from core.models import Modality, User, utcnow

    ready = next(t for t in db.exec(select(TreatmentSession).where(TreatmentSession.status == S.checked_in,
                                                                    TreatmentSession.modality == Modality.esketamine_nasal)).all()
                 if not _reasons(app, t.id))
    clinician = db.exec(select(User).where(User.email == "harbor.clinician@demo.glia.example")).one()
    engine = app.extensions["glia"].engine
    with app.app_context(), session_scope(engine) as s:
        t = workflow.start(s, s.get(TreatmentSession, ready.id), ready.version)
    for fields in ({"dose_mg": 100.0, "dosed_at": utcnow(), "lot_number": "L1", "dose_override_reason": "asked"},
                   {"dose_mg": 70.0, "dosed_at": utcnow(), "lot_number": "L1"},
                   {"dose_mg": 56.0, "dosed_at": utcnow(), "lot_number": ""}):
        with app.app_context(), pytest.raises(workflow.Unsafe), session_scope(engine) as s:
            t = s.get(TreatmentSession, ready.id)
            workflow.move(s, t, S.monitoring, t.version, **fields)
    with app.app_context(), session_scope(engine) as s:
        t = s.get(TreatmentSession, ready.id)
        workflow.move(s, t, S.monitoring, t.version, dose_mg=56.0, dosed_at=utcnow() - timedelta(minutes=1),
                      lot_number="L1")
    with app.app_context(), pytest.raises(workflow.Unsafe, match="minimum observation"), session_scope(engine) as s:
        t = s.get(TreatmentSession, ready.id)
        workflow.move(s, t, S.discharged, t.version, discharge_ready_by_id=clinician.id)
    fresh(db)
    assert db.get(TreatmentSession, ready.id).status == S.monitoring
