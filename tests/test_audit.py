"""The audit log: one row per chart read, no PHI, append-only below the app, a verifiable chain."""
from __future__ import annotations

import threading

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from core import audit
from core.cli import cli
from core.db import new_session, session_scope
from core.models import AuditEvent, ImmutableRecordError, Medication, Patient, User
from tests.security_support import audit_count, engine_of
from tests.support import login


def _stillwater_patient(db) -> Patient:
    return db.exec(select(Patient).join(Medication, Medication.patient_id == Patient.id)
                   .where(Patient.mrn.like("ST%")).order_by(Patient.id)).first()


def _verify(url: str, env: str = "production"):
    """`glia audit verify` as an operator runs it (production mode, no secret key: the CLI path)."""
    return CliRunner().invoke(cli, ["audit", "verify"],
                              env={"GLIA_DATABASE_URL": url, "GLIA_ENV": env, "GLIA_SECRET_KEY": ""})


def _drop_triggers(conn) -> None:
    """What an attacker with database access does first."""
    if conn.dialect.name == "sqlite":
        conn.execute(text("DROP TRIGGER audit_event_no_update"))
        conn.execute(text("DROP TRIGGER audit_event_no_delete"))
    else:
        conn.execute(text("DROP TRIGGER audit_event_no_change ON audit_event"))


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
                                       "DELETE FROM audit_event WHERE id = :id"])
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


def test_verify_names_the_first_bad_entry_after_an_edit_or_a_deletion(app, db_url):
    _add_rows(app, 12)
    result = _verify(db_url)
    assert result.exit_code == 0, result.output
    assert "intact" in result.output

    with engine_of(app).connect() as conn:
        ids = conn.execute(text("SELECT id FROM audit_event ORDER BY id")).scalars().all()
    deleted, edited = ids[-4], ids[-8]
    with engine_of(app).begin() as conn:
        _drop_triggers(conn)
        conn.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": deleted})
    result = _verify(db_url)
    assert result.exit_code == 1
    assert f"broken at entry {ids[-3]} " in result.output  # the row after the gap no longer links

    with engine_of(app).begin() as conn:
        conn.execute(text("UPDATE audit_event SET object_id = 'other' WHERE id = :id"), {"id": edited})
    result = _verify(db_url)
    assert result.exit_code == 1
    assert f"broken at entry {edited} " in result.output


def test_concurrent_appends_from_threads_keep_the_chain_valid(app):
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
    with session_scope(engine_of(app), write=False) as s:
        count, bad = audit.verify(s)
    assert bad is None and count == before + 48
