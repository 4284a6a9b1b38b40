"""PHI canaries: a patient's name, date of birth and medication never reach logs, audit rows or error pages."""
from __future__ import annotations

import logging
import re
from datetime import date

from sqlalchemy import text
from sqlmodel import select

from core.db import session_scope
from core.models import Clinic, Medication, Patient, utcnow
from tests.conftest import BUILTIN
from tests.security_support import engine_of
from tests.support import login, post

CANARY_FIRST, CANARY_LAST = "Quorvanthe", "Zimbledorx"
CANARY_DOB = date(1931, 2, 27)
CANARY_DRUG = "Canarizepam"
CANARIES = [CANARY_FIRST, CANARY_LAST, CANARY_DRUG, CANARY_DOB.isoformat(), "02/27/1931", "Feb 27, 1931"]


def _plant(app) -> int:
    with session_scope(engine_of(app)) as s:
        clinic = s.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
        patient = Patient(clinic_id=clinic.id, mrn="CANARY1", legal_first_name=CANARY_FIRST,
                          legal_last_name=CANARY_LAST, dob=CANARY_DOB, created_at=utcnow())
        s.add(patient)
        s.flush()
        s.add(Medication(clinic_id=clinic.id, patient_id=patient.id, name=CANARY_DRUG, dose="2 mg",
                         drug_class="benzodiazepine", created_at=utcnow()))
        return patient.id


def _all_loggers_at_debug(caplog) -> None:
    """Root and every named logger at DEBUG, Werkzeug and Flask included.

    SQLAlchemy stays pinned at WARNING by core.safe_logging: at DEBUG it prints result rows,
    which are patient data by design; the test checks that the pin holds.
    """
    caplog.set_level(logging.DEBUG)
    for name in ["werkzeug", "flask", "core", "glia", "glia.plugins", "plugins",
                 *logging.root.manager.loggerDict]:
        if not name.startswith("sqlalchemy"):
            caplog.set_level(logging.DEBUG, logger=name)


def test_canaries_never_reach_logs_audit_rows_or_error_pages(make_app, caplog):
    app = make_app(plugins=BUILTIN + [("canary", "tests.security_canary_plugin")])
    pid = _plant(app)
    _all_loggers_at_debug(caplog)
    client = app.test_client()
    login(app, client, "clinician")

    pages = {}
    pages["list"] = client.get("/patients/")
    pages["search"] = post(app, client, "/patients/", {"q": CANARY_LAST})
    pages["chart"] = client.get(f"/patients/{pid}")  # the canary plugin's chart panel raises with PHI
    pages["boom"] = client.get(f"/canary/boom/{pid}")
    pages["duplicate"] = client.get(f"/canary/duplicate/{pid}")
    pages["missing patient"] = client.get("/patients/987654")
    pages["missing page"] = client.get(f"/no-such-page/{pid}")

    assert pages["search"].status_code == 200 and CANARY_LAST in pages["search"].text  # staff do see it
    assert pages["chart"].status_code == 200 and CANARY_DRUG in pages["chart"].text
    for name in ("boom", "duplicate"):
        page = pages[name]
        assert page.status_code == 500
        ref = re.search(r"reference ([0-9a-f]{8})", page.text).group(1)
        assert f"[ref {ref}]" in caplog.text  # the page's id finds the server-side log entry
        for leak in ("Traceback", "RuntimeError", "IntegrityError", "INSERT INTO", "File \""):
            assert leak not in page.text, (name, leak)
        for canary in CANARIES:
            assert canary not in page.text, (name, canary)
    for name in ("missing patient", "missing page"):
        assert pages[name].status_code == 404
        for canary in CANARIES:
            assert canary not in pages[name].text

    assert "RuntimeError" in caplog.text and "IntegrityError" in caplog.text  # the failures were logged...
    logged = caplog.text + "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    for canary in CANARIES:
        assert canary not in logged, canary  # ...but not what they were about
    assert not logging.getLogger("sqlalchemy.engine").isEnabledFor(logging.INFO)

    with engine_of(app).connect() as conn:
        rows = conn.execute(text("SELECT * FROM audit_event")).all()
    dump = "\n".join(" ".join(str(v) for v in row) for row in rows)
    for canary in CANARIES:
        assert canary not in dump, canary
    assert re.search(rf"\b{pid}\b", dump)  # the reads were audited, by id
