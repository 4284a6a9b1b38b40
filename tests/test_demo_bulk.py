"""`glia demo --patients N --sessions M`: the demo grown by bulk inserts into a large clinic that is
still obviously fictional and well run, on SQLite and PostgreSQL, and whose pages still answer."""
from __future__ import annotations

import os
import re
import uuid
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import func, select

from core import create_app, demo
from core.cli import cli
from core.db import new_session
from core.models import Clinic, Diagnosis, OutcomeScore, Patient, Provider, SessionStatus, TreatmentSession
from core.validators import npi_problem
from core.schedule import today_bounds
from tests.conftest import BACKENDS, BUILTIN, PG_URL, _admin_engine
from tests.support import login, post

S = SessionStatus
GROWN = "ST-G%"  # the MRNs of grown patients


@pytest.fixture(scope="module", params=BACKENDS)
def grown(request, tmp_path_factory):
    """A database the real command built: the demo, then 300 patients and 3,000 sessions more."""
    workdir = tmp_path_factory.mktemp(f"bulk-{request.param}")
    if request.param == "sqlite":
        url, dropped = f"sqlite:///{workdir / 'grown.db'}", None
    else:
        dropped = f"glia_test_bulk_{uuid.uuid4().hex[:8]}"
        with _admin_engine().connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{dropped}"'))
        url = make_url(PG_URL).set(drivername="postgresql+psycopg", database=dropped).render_as_string(hide_password=False)
    here = os.getcwd()
    os.chdir(workdir)  # the command keeps the demo's secret key under ./instance
    try:
        first = CliRunner().invoke(cli, ["demo", "--no-serve", "--patients", "300", "--sessions", "3000",
                                         "--database-url", url], catch_exceptions=False)
    finally:
        os.chdir(here)
    app = create_app({"GLIA_ENV": "testing", "GLIA_DATABASE_URL": url, "SECRET_KEY": "t" * 40, "TESTING": True,
                      "GLIA_LOGIN_RATE": "1000 per minute"}, plugins=BUILTIN)
    yield app, first
    app.extensions["glia"].engine.dispose()
    if dropped:
        with _admin_engine().connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{dropped}" WITH (FORCE)'))


@pytest.fixture
def db(grown):
    session = new_session(grown[0].extensions["glia"].engine, write=False)
    yield session
    session.close()


def stillwater(db) -> Clinic:
    return db.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()


def grown_sessions(db):
    return db.exec(select(TreatmentSession).join(Patient, Patient.id == TreatmentSession.patient_id)
                   .where(Patient.mrn.like(GROWN))).all()


def test_the_command_adds_what_it_was_asked_for(grown, db):
    _app, result = grown
    assert result.exit_code == 0, result.output
    assert "Demo database created." in result.output and "Added 300 patients, 3,000 sessions" in result.output
    clinic = stillwater(db)
    count = db.exec(select(func.count()).select_from(Patient).where(Patient.clinic_id == clinic.id)).one()
    assert count == demo.PATIENTS_PER_CLINIC + 300
    sessions = grown_sessions(db)
    assert len(sessions) == 3000 and {t.clinic_id for t in sessions} == {clinic.id}
    scores = db.exec(select(OutcomeScore).join(Patient, Patient.id == OutcomeScore.patient_id)
                     .where(Patient.mrn.like(GROWN))).all()
    assert scores and {s.treatment_id for s in scores} <= {t.id for t in sessions}


def test_grown_patients_are_obviously_fictional(db):
    patients = db.exec(select(Patient).where(Patient.mrn.like(GROWN)).order_by(Patient.mrn)).all()
    assert [p.mrn for p in patients][:2] == ["ST-G0000001", "ST-G0000002"]
    for p in patients:
        assert p.legal_first_name in demo.FIRST and set(p.legal_last_name.split("-")) <= set(demo.LAST), p.mrn
        for phone in (p.phone, p.escort_phone, p.emergency_contact_phone):
            assert re.fullmatch(r"\d{3}-555-01\d\d", phone), p.mrn  # the range kept for fiction
        assert p.email.endswith("@demo.glia.example") and "Example Street" in p.address_line1
    assert len({(p.legal_first_name, p.legal_last_name) for p in patients}) > 250  # not one name 300 times


def test_the_grown_clinic_is_well_run(db):
    clinic = stillwater(db)
    start, end, _day = today_bounds(clinic)
    sessions = grown_sessions(db)
    assert not [t for t in sessions if start <= t.scheduled_at < end]  # today stays the demo's schedule
    past = [t for t in sessions if t.scheduled_at < start]
    later = [t for t in sessions if t.scheduled_at >= end]
    assert {t.status for t in later} == {S.scheduled} and {t.status for t in past} <= {S.discharged, S.cancelled, S.no_show}
    done = [t for t in past if t.status == S.discharged]
    assert len(done) >= 0.9 * len(past)  # a few cancellations and no-shows, no more
    for t in done:
        assert t.weight_kg and (t.dose_mg == 200 or 0.5 <= round(t.dose_mg / t.weight_kg, 2) <= 1.0)
        assert t.discharge_ready_by_id and t.discharged_at - t.dosed_at >= timedelta(minutes=30)
    assert len({t.provider_id for t in sessions}) >= 2 and len({t.modality for t in sessions}) >= 2
    ids = set(db.exec(select(Patient.id).where(Patient.mrn.like(GROWN))).all())
    assert ids == set(db.exec(select(Diagnosis.patient_id).where(Diagnosis.patient_id.in_(ids),
                                                                 Diagnosis.is_primary)).all())
    assert not db.exec(select(OutcomeScore).where(OutcomeScore.patient_id.in_(ids), OutcomeScore.alert)).all()


def test_pages_answer_for_the_grown_clinic(grown, db):
    app = grown[0]
    busiest, count = db.exec(select(TreatmentSession.patient_id, func.count()).join(
        Patient, Patient.id == TreatmentSession.patient_id).where(Patient.mrn.like(GROWN))
        .group_by(TreatmentSession.patient_id).order_by(func.count().desc())).first()
    patient = db.get(Patient, busiest)
    client = app.test_client()
    login(app, client, "clinician")
    assert client.get("/").status_code == 200
    listing = client.get("/patients/")
    assert listing.status_code == 200 and f"{demo.PATIENTS_PER_CLINIC + 300} patients" in listing.text
    chart = client.get(f"/patients/{busiest}")
    assert chart.status_code == 200 and patient.legal_last_name in chart.text and count > 10
    found = post(app, client, "/patients/", {"q": patient.mrn})
    assert found.status_code == 200 and patient.legal_last_name in found.text
    portal = app.test_client()
    login(app, portal, "patient")
    assert portal.get("/portal/").status_code == 200


def test_growing_again_adds_more_and_providers_for_them(grown, tmp_path, monkeypatch):
    app = grown[0]
    url = app.extensions["glia"].engine.url.render_as_string(hide_password=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["demo", "--no-serve", "--patients", "4000", "--sessions", "8000",
                                      "--database-url", url], catch_exceptions=False)
    assert result.exit_code == 0 and "already present" in result.output, result.output
    with new_session(app.extensions["glia"].engine, write=False) as db:
        mrns = db.exec(select(Patient.mrn).where(Patient.mrn.like(GROWN)).order_by(Patient.mrn.desc())).all()
        assert len(mrns) == 4300 and mrns[0] == "ST-G0004300"  # numbered on from the first growth
        sessions = grown_sessions(db)
        assert len(sessions) == 11000 and len({t.id for t in sessions}) == 11000
        hired = db.exec(select(Provider).where(Provider.clinic_id == stillwater(db).id,
                                               Provider.last_name.like("%-Locum"))).all()
        assert len(hired) == 1 and npi_problem(hired[0].npi, kind=1) is None  # one per 4,000 patients
        assert hired[0].id in {t.provider_id for t in sessions}
