"""The audit log: one row per chart read, no PHI, append-only below the app, a keyed chain that
`glia audit verify` checks: edits, deletions, copies, truncation (against a checkpoint) and a chain
recomputed without the key are all named."""
from __future__ import annotations

import threading
import uuid
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from core import audit, audit_chain
from core.cli import cli
from core.db import new_session, session_scope
from core.models import AuditEvent, ImmutableRecordError, Medication, Patient, User
from tests.security_support import audit_count, engine_of, scalar
from tests.support import login


def _stillwater_patient(db) -> Patient:
    return db.exec(select(Patient).join(Medication, Medication.patient_id == Patient.id)
                   .where(Patient.mrn.like("ST%")).order_by(Patient.id)).first()


def _audit(url: str, *args, env=None):
    """`glia audit ...` as an operator runs it: production mode, no secret key, the audit key from
    the environment (conftest sets GLIA_AUDIT_KEY for the run)."""
    return CliRunner().invoke(cli, ["audit", *args], env={"GLIA_DATABASE_URL": url, "GLIA_ENV": "production",
                                                          "GLIA_SECRET_KEY": "", **(env or {})})


def _verify(url: str, *args, env=None):
    return _audit(url, "verify", *args, env=env)


def _drop_triggers(conn) -> None:
    """What an attacker with database access does first."""
    for table in ("audit_event", "audit_seal"):
        if conn.dialect.name == "sqlite":
            conn.execute(text(f"DROP TRIGGER {table}_no_update"))
            conn.execute(text(f"DROP TRIGGER {table}_no_delete"))
        else:
            conn.execute(text(f"DROP TRIGGER {table}_no_change ON {table}"))


def _add_rows(app, n: int) -> None:
    with session_scope(engine_of(app)) as s:
        for i in range(n):
            audit.append(s, "test.event", object_type="test", object_id=i)


def test_a_chart_read_writes_one_audit_row_without_phi(app, client, db):
    patient = _stillwater_patient(db)
    meds = db.exec(select(Medication.name).where(Medication.patient_id == patient.id)).all()
    clinician = db.exec(select(User).where(User.email == "clinician@demo.glia.example")).one()
    login(app, client, "clinician")
    before = audit_count(app)
    assert client.get(f"/patients/{patient.id}").status_code == 200
    assert audit_count(app) == before + 1
    with engine_of(app).connect() as conn:
        row = conn.execute(text("SELECT * FROM audit_event ORDER BY id DESC LIMIT 1")).mappings().one()
    assert row["user_id"] == clinician.id and row["role"] == "clinician"
    assert row["patient_id"] == patient.id and row["object_id"] == str(patient.id)
    assert row["action"].startswith("patient.") and row["ip"] == "127.0.0.1" and row["outcome"] == "ok"
    assert row["clinic_id"] == patient.clinic_id
    values = " ".join(str(v) for v in row.values()).lower()
    for phi in [patient.legal_first_name, patient.legal_last_name, patient.dob.isoformat(),
                patient.dob.strftime("%m/%d/%Y"), *meds]:
        assert phi.lower() not in values


def test_audit_rows_cannot_be_changed_through_the_orm(app):
    _add_rows(app, 1)
    session = new_session(engine_of(app))
    try:
        event = session.exec(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
        event.detail = "rewritten"
        with pytest.raises(ImmutableRecordError):
            session.flush()
        session.rollback()
        session.delete(session.get(AuditEvent, event.id))
        with pytest.raises(ImmutableRecordError):
            session.flush()
    finally:
        session.rollback()
        session.close()


@pytest.mark.parametrize("statement", ["UPDATE audit_event SET detail = 'rewritten' WHERE id = :id",
                                       "DELETE FROM audit_event WHERE id = :id",
                                       "UPDATE audit_seal SET hash = 'x' WHERE event_id = :id",
                                       "DELETE FROM audit_seal WHERE event_id = :id"])
def test_audit_rows_cannot_be_changed_with_raw_sql(app, statement):
    _add_rows(app, 1)
    last = audit_count(app)
    with engine_of(app).connect() as conn:
        top = conn.execute(text("SELECT max(id) FROM audit_event")).scalar()
    with pytest.raises(DBAPIError, match="append-only"):
        with engine_of(app).begin() as conn:
            conn.execute(text(statement), {"id": top})
    assert audit_count(app) == last
    with engine_of(app).connect() as conn:
        assert conn.execute(text("SELECT detail FROM audit_event WHERE id = :id"), {"id": top}).scalar() != "rewritten"




def _ids(app) -> list[int]:
    with engine_of(app).connect() as conn:
        return conn.execute(text("SELECT event_id FROM audit_seal ORDER BY seq")).scalars().all()


def test_every_row_is_sealed_when_its_transaction_commits_and_the_log_verifies(app, db_url):
    _add_rows(app, 5)
    assert scalar(app, "SELECT count(*) FROM audit_event e LEFT JOIN audit_seal s ON s.event_id = e.id "
                       "WHERE s.seq IS NULL") == 0
    assert scalar(app, "SELECT count(*) FROM audit_seal") == audit_count(app)
    result = _verify(db_url)
    assert result.exit_code == 0, result.output
    assert f"intact: {audit_count(app)} entries sealed through position {audit_count(app)}" in result.output


def test_an_edited_row_is_named(app, db_url):
    _add_rows(app, 12)
    edited = _ids(app)[-8]
    with engine_of(app).begin() as conn:
        _drop_triggers(conn)
        conn.execute(text("UPDATE audit_event SET object_id = 'other' WHERE id = :id"), {"id": edited})
    result = _verify(db_url)
    assert result.exit_code == 1
    assert f"broken at entry {edited}: entry {edited} at position" in result.output and "changed" in result.output


def test_a_row_edited_before_it_was_sealed_is_named(app, db_url):
    """An attacker who edits a row in the moment between its commit and its seal is caught by its MAC."""
    with session_scope(engine_of(app)) as s:
        event = audit.append(s, "test.event", object_type="test", object_id=1)
        s.info.pop(audit_chain.UNSEALED)  # committed, not sealed yet
    with engine_of(app).begin() as conn:
        _drop_triggers(conn)
        conn.execute(text("UPDATE audit_event SET outcome = 'denied' WHERE id = :id"), {"id": event.id})
    result = _verify(db_url)
    assert result.exit_code == 1
    assert f"broken at entry {event.id}" in result.output


def test_a_deleted_row_is_named(app, db_url):
    _add_rows(app, 12)
    ids = _ids(app)
    with engine_of(app).begin() as conn:
        _drop_triggers(conn)
        position = conn.execute(text("SELECT seq FROM audit_seal WHERE event_id = :id"), {"id": ids[-4]}).scalar()
        conn.execute(text("DELETE FROM audit_seal WHERE event_id = :id"), {"id": ids[-4]})
        conn.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": ids[-4]})
    result = _verify(db_url)
    assert result.exit_code == 1
    assert f"broken at entry {ids[-3]}: positions {position} to {position} are missing" in result.output


def test_a_copied_row_is_named(app, db_url):
    """Nothing twice: a row copied with its MAC (and even sealed) shows as a copy."""
    _add_rows(app, 3)
    original = _ids(app)[-1]
    with engine_of(app).begin() as conn:
        _drop_triggers(conn)
        conn.execute(text("DROP INDEX ix_audit_event_nonce"))
        columns = "at, clinic_id, user_id, role, action, object_type, object_id, patient_id, outcome, ip, detail, " \
                  "prev_hash, hash, nonce, mac"
        conn.execute(text(f"INSERT INTO audit_event ({columns}) SELECT {columns} FROM audit_event WHERE id = :id"),
                     {"id": original})
        copy = conn.execute(text("SELECT max(id) FROM audit_event")).scalar()
    result = _verify(db_url)
    assert result.exit_code == 1
    assert f"broken at entry {copy}: entry {copy} is a copy" in result.output


def test_truncation_at_the_end_is_caught_against_a_checkpoint(app, db_url, tmp_path):
    _add_rows(app, 10)
    checkpoint = tmp_path / "head.json"
    made = _audit(db_url, "checkpoint", "--output", str(checkpoint))
    assert made.exit_code == 0, made.output
    assert _verify(db_url, "--checkpoint", str(checkpoint)).exit_code == 0
    last = _ids(app)[-3:]
    with engine_of(app).begin() as conn:
        _drop_triggers(conn)
        for event_id in last:
            conn.execute(text("DELETE FROM audit_seal WHERE event_id = :id"), {"id": event_id})
            conn.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": event_id})
    assert _verify(db_url).exit_code == 0  # a shorter chain is consistent in itself: hence checkpoints
    result = _verify(db_url, "--checkpoint", str(checkpoint))
    assert result.exit_code == 1
    assert "entries at the end were deleted" in result.output


def test_a_checkpoint_not_signed_with_the_key_is_refused(app, db_url, tmp_path):
    _add_rows(app, 2)
    forged = tmp_path / "forged.json"
    forged.write_text(audit_chain.Checkpoint.of_head(b"k" * 40, 1, "0" * 64).dumps())
    result = _verify(db_url, "--checkpoint", str(forged))
    assert result.exit_code == 1 and "signature does not match" in result.output
    garbage = tmp_path / "garbage.json"
    garbage.write_text("not json")
    result = _verify(db_url, "--checkpoint", str(garbage))
    assert result.exit_code == 2 and "not a Glia audit checkpoint" in result.output


def test_a_chain_recomputed_without_the_key_is_caught(app, db_url):
    """Someone with write access to the database edits a row and rebuilds every MAC and seal after it,
    consistently, with a key of their own (the real one is not in the database)."""
    _add_rows(app, 8)
    guess = b"attacker-" + b"x" * 40
    ids = _ids(app)
    edited = ids[-5]
    with engine_of(app).begin() as conn:
        _drop_triggers(conn)
        conn.execute(text("UPDATE audit_event SET object_id = 'other' WHERE id = :id"), {"id": edited})
        seals = conn.execute(text("SELECT seq, event_id FROM audit_seal ORDER BY seq")).all()
        prev = audit_chain.GENESIS
        for seq, event_id in seals:
            row = conn.execute(text("SELECT * FROM audit_event WHERE id = :id"), {"id": event_id}).one()
            if event_id >= edited:
                row = _recomputed(conn, guess, row)
                new = audit_chain.seal_hash(guess, prev, seq, row)
                conn.execute(text("UPDATE audit_seal SET hash = :h WHERE seq = :s"), {"h": new, "s": seq})
            prev = conn.execute(text("SELECT hash FROM audit_seal WHERE seq = :s"), {"s": seq}).scalar()
    result = _verify(db_url)
    assert result.exit_code == 1
    assert f"broken at entry {edited}" in result.output and "recomputed without the key" in result.output


def _recomputed(conn, key, row):
    """The row read back as the ORM would, its MAC rebuilt under ``key``."""
    event = AuditEvent.model_validate(dict(row._mapping))
    event.at = event.at if event.at.tzinfo else event.at.replace(tzinfo=timezone.utc)
    conn.execute(text("UPDATE audit_event SET mac = :m WHERE id = :id"), {"m": audit_chain.row_mac(key, event),
                                                                         "id": event.id})
    event.mac = audit_chain.row_mac(key, event)
    return event


def test_production_refuses_to_start_without_an_audit_key(db_url, monkeypatch, tmp_path):
    from core import create_app
    from core.config import ConfigError
    from tests.conftest import BUILTIN

    monkeypatch.delenv("GLIA_AUDIT_KEY", raising=False)
    monkeypatch.delenv("GLIA_AUDIT_KEY_FILE", raising=False)
    with pytest.raises(ConfigError, match="GLIA_AUDIT_KEY"):
        create_app({"GLIA_ENV": "production", "GLIA_DATABASE_URL": db_url, "SECRET_KEY": "s" * 16 + "0123456789abcdef"},
                   plugins=BUILTIN)
    key_file = tmp_path / "audit.key"
    key_file.write_text("short")
    monkeypatch.setenv("GLIA_AUDIT_KEY_FILE", str(key_file))
    with pytest.raises(ConfigError, match="32\\+ characters"):
        create_app({"GLIA_ENV": "production", "GLIA_DATABASE_URL": db_url, "GLIA_CLI": True}, plugins=BUILTIN)
    result = CliRunner().invoke(cli, ["audit", "verify"], env={"GLIA_DATABASE_URL": db_url, "GLIA_ENV": "production",
                                                              "GLIA_AUDIT_KEY": ""})
    assert result.exit_code != 0 and isinstance(result.exception, ConfigError)


def test_concurrent_appends_from_threads_are_each_sealed_once(app, db_url):
    before = audit_count(app)
    errors = []

    def writer(n):
        try:
            for i in range(8):
                with session_scope(engine_of(app)) as s:
                    audit.append(s, "test.concurrent", object_type="thread", object_id=f"{n}-{i}")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert audit_count(app) == before + 48
    result = _verify(db_url)
    assert result.exit_code == 0, result.output
    assert f"intact: {before + 48} entries sealed" in result.output
    assert scalar(app, "SELECT count(DISTINCT event_id) FROM audit_seal") == before + 48


@pytest.fixture
def blank_url(backend, tmp_path):
    """A database with no tables, to migrate step by step."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from tests.conftest import PG_URL

    name = f"glia_test_blank_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(PG_URL).set(drivername="postgresql+psycopg", database="postgres"),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_URL).set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_rows_of_the_old_chain_are_sealed_by_the_upgrade_and_still_checked(blank_url):
    """Migration 0005 carries the old unkeyed chain: it verifies as before and is sealed at the start."""
    from alembic import command

    from core import create_app, migrate

    app = create_app({"GLIA_ENV": "testing", "GLIA_DATABASE_URL": blank_url, "SECRET_KEY": "t" * 40},
                     plugins=[], check_schema=False)
    ext = app.extensions["glia"]
    with app.app_context():
        command.upgrade(migrate.alembic_config(ext, "core"), "0004_core_rems")
        prev, ids = audit_chain.GENESIS, []
        with ext.engine.begin() as conn:
            for i in range(5):  # written the way core.audit wrote rows before this revision
                row = SimpleNamespace(at=datetime(2026, 11, 1, 9, i, tzinfo=timezone.utc), clinic_id=None, user_id=None,
                                      role="system", action="old.event", object_type="test", object_id=str(i),
                                      patient_id=None, outcome="ok", ip="", detail="")
                digest = audit_chain.legacy_hash(prev, row)
                conn.execute(text("INSERT INTO audit_event (at, clinic_id, user_id, role, action, object_type, "
                                  "object_id, patient_id, outcome, ip, detail, prev_hash, hash) VALUES (:at, NULL, "
                                  "NULL, 'system', 'old.event', 'test', :o, NULL, 'ok', '', '', :p, :h)"),
                             {"at": row.at.replace(tzinfo=None), "o": str(i), "p": prev, "h": digest})
                prev = digest
            ids = conn.execute(text("SELECT id FROM audit_event ORDER BY id")).scalars().all()
        migrate.upgrade(ext)
        with ext.engine.connect() as conn:
            assert conn.execute(text("SELECT event_id FROM audit_seal ORDER BY seq")).scalars().all() == ids
    with session_scope(ext.engine) as s:
        audit.append(s, "new.event", object_type="test", object_id=6)
    core_only = {"GLIA_BLOCKED_PLUGINS": "billing,consent,coordination"}
    result = _verify(blank_url, env=core_only)
    assert result.exit_code == 0, result.output
    assert "intact: 6 entries sealed through position 6" in result.output
    with ext.engine.begin() as conn:
        _drop_triggers(conn)
        conn.execute(text("UPDATE audit_event SET object_id = 'other' WHERE id = :id"), {"id": ids[2]})
    result = _verify(blank_url, env=core_only)
    assert result.exit_code == 1 and f"broken at entry {ids[2]}" in result.output
    ext.engine.dispose()
