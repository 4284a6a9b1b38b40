"""Page speed as the clinic grows, and what plugins cost.

Builds a SQLite demo database, grows one clinic to 10,000 patients and 200,000 treatment
sessions, then measures (median of repeated requests through the real app):
- dashboard, patient list, patient search and patient chart, against the 50 ms target;
- SQL statements per page at demo size and at full size (they must not grow with the data);
- each page with all three plugins loaded against none (target: within 1.3x).

Run: python bench/bench_pages.py [--patients 10000] [--sessions 200000]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import event, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from core import create_app
from core.db import session_scope
from core.models import Clinic, Modality, Patient, Provider, SessionStatus, TreatmentSession, utcnow
from tests.support import login, post

BUILTIN = [("billing", "plugins.billing"), ("consent", "plugins.consent"), ("coordination", "plugins.coordination")]
CONFIG = {"GLIA_ENV": "testing", "SECRET_KEY": "b" * 40, "GLIA_LOGIN_RATE": "1000 per minute"}


def build(url: str) -> None:
    from core import demo, migrate

    app = create_app({**CONFIG, "GLIA_DATABASE_URL": url}, plugins=BUILTIN, check_schema=False)
    ext = app.extensions["glia"]
    with app.app_context():
        migrate.upgrade(ext)
        with session_scope(ext.engine) as session:
            demo.seed(session, ext)
    ext.engine.dispose()


def grow(url: str, patients: int, sessions: int) -> int:
    """Bulk-add fictional patients and sessions to stillwater; returns a busy patient's id."""
    app = create_app({**CONFIG, "GLIA_DATABASE_URL": url}, plugins=[], check_schema=False)
    engine = app.extensions["glia"].engine
    rng = random.Random(7)
    with session_scope(engine) as s:
        clinic = s.exec(select(Clinic).where(Clinic.slug == "stillwater")).scalar_one()
        provider_id = s.exec(select(Provider.id).where(Provider.clinic_id == clinic.id)).scalars().first()
        now = utcnow()
        rows = [dict(clinic_id=clinic.id, mrn=f"BX{i:06d}", legal_first_name=f"Bench{i}",
                     legal_last_name=f"Sampleton{i % 977}", preferred_name="", dob=date(1950, 1, 1) + timedelta(days=i % 18000),
                     sex="U", address_line1="", address_line2="", city="", state="", postal_code="", phone="", email="",
                     member_id="", escort_name="", escort_phone="", emergency_contact_name="", emergency_contact_phone="",
                     archived=False, created_at=now) for i in range(patients)]
        s.execute(insert(Patient), rows)
        ids = s.exec(select(Patient.id).where(Patient.mrn.like("BX%"))).scalars().all()
        busy = ids[0]
        batch = []
        for k in range(sessions):
            pid = busy if k < 300 else rng.choice(ids)
            start = now - timedelta(days=rng.randrange(1, 900), minutes=rng.randrange(600))
            batch.append(dict(clinic_id=clinic.id, patient_id=pid, provider_id=provider_id, modality=Modality.iv_ketamine,
                              status=SessionStatus.discharged, scheduled_at=start, checked_in_at=start,
                              started_at=start, monitoring_at=start, discharged_at=start, escort_name="",
                              escort_phone="", escort_confirmed=True, notes="", version=1))
            if len(batch) == 20000:
                s.execute(insert(TreatmentSession), batch)
                batch.clear()
        if batch:
            s.execute(insert(TreatmentSession), batch)
    engine.dispose()
    return busy


def measure(url: str, plugins, patient_id: int, repeat: int) -> dict[str, tuple[float, int]]:
    """page -> (median ms, SQL statements) for a signed-in clinician."""
    app = create_app({**CONFIG, "GLIA_DATABASE_URL": url}, plugins=plugins)
    engine = app.extensions["glia"].engine
    count = [0]
    event.listen(engine, "before_cursor_execute", lambda *a: count.__setitem__(0, count[0] + 1))
    client = app.test_client()
    login(app, client, "clinician")
    pages = {
        "dashboard": lambda: client.get("/"),
        "patient list": lambda: client.get("/patients/"),
        "patient search": lambda: post(app, client, "/patients/", {"q": "Sampleton42"}),
        "patient chart": lambda: client.get(f"/patients/{patient_id}"),
    }
    results = {}
    for name, fetch in pages.items():
        assert fetch().status_code == 200, name  # warm
        times, statements = [], 0
        for _ in range(repeat):
            count[0] = 0
            t0 = time.perf_counter()
            resp = fetch()
            times.append((time.perf_counter() - t0) * 1000)
            statements = count[0]
            assert resp.status_code == 200, name
        results[name] = (statistics.median(times), statements)
    engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small = f"sqlite:///{Path(tmp) / 'small.db'}"
        big = f"sqlite:///{Path(tmp) / 'big.db'}"
        build(small)
        Path(tmp, "big.db").write_bytes(Path(tmp, "small.db").read_bytes())
        with session_scope(create_app({**CONFIG, "GLIA_DATABASE_URL": small}, plugins=[]).extensions["glia"].engine) as s:
            small_patient = s.exec(select(Patient.id).order_by(Patient.id)).scalars().first()
        busy = grow(big, args.patients, args.sessions)
        at_small = measure(small, BUILTIN, small_patient, args.repeat)
        at_big = measure(big, BUILTIN, busy, args.repeat)
        bare = measure(big, [], busy, args.repeat)
    print(f"{args.patients:,} patients, {args.sessions:,} sessions, SQLite, median of {args.repeat}")
    print(f"{'page':16} {'ms (big)':>9} {'vs 50 ms':>9} {'SQL small':>10} {'SQL big':>8} {'plugins/none':>13}")
    for page, (ms, statements) in at_big.items():
        print(f"{page:16} {ms:9.1f} {ms / 50:8.2f}x {at_small[page][1]:10d} {statements:8d} "
              f"{ms / bare[page][0]:12.2f}x")


if __name__ == "__main__":
    main()
