"""Requests in parallel: a reading request holds no write lock, and its audit row still lands.

Real threads drive the real app on the test's real database (SQLite file or PostgreSQL).
"""
from __future__ import annotations

import threading

from sqlalchemy import text
from sqlmodel import select

from core import audit
from core.auth import staff
from core.db import get_session
from core.models import Patient
from tests.security_support import audit_count, engine_of, scalar
from tests.support import login, post

GIVE_UP = 120  # seconds: only so a regression fails instead of hanging the run


def _patient(db) -> Patient:
    return db.exec(select(Patient).where(Patient.mrn.like("ST%")).order_by(Patient.id)).first()


def _held_read_route(app, reading: threading.Event, release: threading.Event) -> None:
    """A chart-like GET that reads, audits, then stays inside its transaction until released."""

    @app.get("/_test/held-read/<int:patient_id>")
    @staff("clinician")
    def held_read(patient_id: int):
        patient = get_session().exec(select(Patient).where(Patient.id == patient_id)).one()
        audit.record("test.held_read", object_type="patient", object_id=patient.id, patient_id=patient.id)
        reading.set()
        release.wait(GIVE_UP)
        return "read"


def test_a_long_read_request_does_not_block_a_write_request(make_app, db):
    app = make_app()
    reading, release = threading.Event(), threading.Event()
    _held_read_route(app, reading, release)
    patient = _patient(db)
    reader, writer = app.test_client(), app.test_client()
    login(app, reader, "clinician")
    login(app, writer, "clinician")
    before = audit_count(app)
    results: dict[str, object] = {}

    def read():
        results["read"] = reader.get(f"/_test/held-read/{patient.id}")

    def write():
        results["write"] = post(app, writer, f"/patients/{patient.id}/medications", {
            "med_name": "Sertraline", "drug_class": "ssri", "sensitivity": "general"})

    read_thread = threading.Thread(target=read)
    read_thread.start()
    assert reading.wait(GIVE_UP), "the read request never started"
    write_thread = threading.Thread(target=write)
    write_thread.start()
    # the reader stays open until the writer is done: a write lock held by the read would
    # make the writer wait for busy_timeout and fail (SQLite) or wait for ever (PostgreSQL)
    write_thread.join(GIVE_UP)
    finished_while_reading = not write_thread.is_alive()
    release.set()
    read_thread.join(GIVE_UP)
    write_thread.join(GIVE_UP)

    assert finished_while_reading, "the write request waited for the open read request"
    assert results["write"].status_code == 302
    assert results["read"].status_code == 200 and results["read"].data == b"read"
    assert scalar(app, "SELECT count(*) FROM medication WHERE patient_id = :p AND name = 'Sertraline'",
                  p=patient.id) == 1
    assert audit_count(app) == before + 2
    with engine_of(app).connect() as conn:
        actions = conn.execute(text("SELECT action FROM audit_event ORDER BY id DESC LIMIT 2")).scalars().all()
    assert sorted(actions) == ["medication.create", "test.held_read"]


def test_a_read_whose_audit_row_cannot_be_written_answers_the_error_page(app, client, db):
    """Fail closed: no chart leaves without its audit row."""
    patient = _patient(db)
    login(app, client, "clinician")
    before = audit_count(app)
    with engine_of(app).begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text("CREATE TRIGGER audit_refused BEFORE INSERT ON audit_event "
                              "BEGIN SELECT RAISE(ABORT, 'disk full'); END"))
        else:
            conn.execute(text("CREATE FUNCTION audit_refused() RETURNS trigger AS $$ "
                              "BEGIN RAISE EXCEPTION 'disk full'; END; $$ LANGUAGE plpgsql"))
            conn.execute(text("CREATE TRIGGER audit_refused BEFORE INSERT ON audit_event "
                              "FOR EACH ROW EXECUTE FUNCTION audit_refused()"))
    page = client.get(f"/patients/{patient.id}")
    assert page.status_code == 500
    body = page.get_data(as_text=True)
    assert "Something went wrong" in body and patient.legal_last_name not in body
    assert audit_count(app) == before
