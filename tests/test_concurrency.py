"""Requests in parallel: a reading request holds no write lock, its audit row still lands, and
under load every audited request leaves exactly one audit row in a chain that verifies.

Real threads drive the real app (in process, or served over HTTP) on the test's real database.
"""
from __future__ import annotations

import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from http.cookiejar import CookieJar

from click.testing import CliRunner
from sqlalchemy import text
from sqlmodel import select
from werkzeug.serving import make_server

from core import audit
from core.cli import cli
from core.auth import staff
from core.db import get_session
from core.models import Patient
from tests.security_support import audit_count, engine_of, scalar
from tests.support import form_token, login, post

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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 302 after a POST is the answer itself


def _signed_in_opener(base: str):
    """A browser-like client of the served app, signed in as the clinician, and a form token."""
    from core.demo import DEMO_PASSWORD

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()), _NoRedirect)
    token = form_token(opener.open(f"{base}/login").read().decode())
    data = urllib.parse.urlencode({"csrf_token": token, "email": "clinician@demo.glia.example",
                                   "password": DEMO_PASSWORD}).encode()
    try:
        opener.open(f"{base}/login", data=data)
    except urllib.error.HTTPError as answer:
        assert answer.code == 302, answer.code
    return opener


def test_fifty_clients_at_once_leave_exactly_one_sealed_audit_row_per_audited_request(make_app, db, db_url):
    app = make_app()
    patients = db.exec(select(Patient.id).where(Patient.mrn.like("ST%")).order_by(Patient.id).limit(5)).all()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        signed_in = [_signed_in_opener(base) for _ in range(10)]  # 50 clients on 10 sign-ins
        tokens = [form_token(o.open(f"{base}/patients/{patients[0]}").read().decode()) for o in signed_in]
        openers, tokens = [signed_in[i % 10] for i in range(50)], [tokens[i % 10] for i in range(50)]
        before = _actions(app)
        counts = [Counter() for _ in range(50)]  # one per client: no shared counter to race on
        failures: list[str] = []
        stop = time.monotonic() + 3  # a few seconds, and at least 4 requests per client; no timed asserts
        start = threading.Barrier(50)

        def client(i: int) -> None:
            start.wait()
            n = 0
            while n < 4 or time.monotonic() < stop:
                patient = patients[(i + n) % len(patients)]
                try:
                    if n % 4 == 3:
                        data = urllib.parse.urlencode({"csrf_token": tokens[i], "med_name": f"Load {i}-{n}",
                                                       "drug_class": "ssri", "sensitivity": "general"}).encode()
                        try:
                            openers[i].open(f"{base}/patients/{patient}/medications", data=data)
                            failures.append("the medication form did not redirect")
                        except urllib.error.HTTPError as answer:
                            if answer.code != 302:
                                raise
                        counts[i]["medication.create"] += 1
                    else:
                        openers[i].open(f"{base}/patients/{patient}").read()
                        counts[i]["patient.view"] += 1
                except Exception as exc:  # noqa: BLE001 - every failed request is reported
                    failures.append(f"{type(exc).__name__}: {exc}")
                n += 1

        threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(GIVE_UP)
    finally:
        server.shutdown()
    done = sum(counts, Counter())
    assert not failures, failures[:5]
    assert done["patient.view"] > 50 and done["medication.create"] > 0
    after = _actions(app)
    assert {a: after.get(a, 0) - before.get(a, 0) for a in done} == dict(done)  # nothing lost, nothing twice
    assert sum(after.values()) - sum(before.values()) == sum(done.values())
    result = CliRunner().invoke(cli, ["audit", "verify"], env={"GLIA_DATABASE_URL": db_url, "GLIA_ENV": "production"})
    assert result.exit_code == 0, result.output
    assert f"intact: {audit_count(app)} entries sealed" in result.output


def _actions(app) -> dict[str, int]:
    with engine_of(app).connect() as conn:
        return dict(conn.execute(text("SELECT action, count(*) FROM audit_event GROUP BY action")).all())
