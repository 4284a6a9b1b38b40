"""The plugins' forms on WTForms: only declared fields are read, a refused form answers 422 with its
message beside the field, and no converted plugin parses request.form by hand."""
from __future__ import annotations

import re
from pathlib import Path

from sqlmodel import func, select

from core.models import Patient
from plugins.billing.models import BillingPackage
from tests.support import login, post
from tests.test_billing_web import fresh

ROOT = Path(__file__).resolve().parent.parent
CONVERTED = ("billing",)  # consent and coordination still to convert (issue 12)


def _packages(db, pid: int) -> list[BillingPackage]:
    fresh(db)
    return list(db.exec(select(BillingPackage).where(BillingPackage.patient_id == pid)).all())


def test_a_package_sale_ignores_undeclared_fields(app, client, db):
    patient = db.exec(select(Patient).order_by(Patient.id)).first()
    other = db.exec(select(Patient).where(Patient.id != patient.id).order_by(Patient.id)).first()
    before = len(_packages(db, patient.id))
    login(app, client, "manager")
    resp = post(app, client, f"/billing/patients/{patient.id}/packages",
                {"name": "Series", "sessions": "4", "amount": "400.00", "method": "card",
                 "clinic_id": "999", "patient_id": str(other.id), "paid_cents": "1", "amount_cents": "1",
                 "sessions_used": "3", "status": "void"})
    assert resp.status_code == 302
    rows = _packages(db, patient.id)
    assert len(rows) == before + 1
    new = rows[-1]
    assert (new.clinic_id, new.patient_id, new.paid_cents, new.sessions_used) == (patient.clinic_id, patient.id,
                                                                                  40_000, 0)


def test_a_refused_package_sale_says_why_beside_the_field_and_writes_nothing(app, client, db):
    patient = db.exec(select(Patient).order_by(Patient.id)).first()
    before = db.exec(select(func.count()).select_from(BillingPackage)).one()
    login(app, client, "manager")
    resp = post(app, client, f"/billing/patients/{patient.id}/packages",
                {"name": "Series", "sessions": "4", "amount": "$1,250", "method": "card"})
    assert resp.status_code == 422
    assert re.search(r'name="amount"[^>]*aria-invalid="true" aria-describedby="e-amount"', resp.text)
    assert re.search(r'id="e-amount">Package price: write the amount without commas', resp.text)
    assert 'value="$1,250"' in resp.text  # shown again as typed
    fresh(db)
    assert db.exec(select(func.count()).select_from(BillingPackage)).one() == before


def test_converted_plugins_read_no_form_by_hand():
    for plugin in CONVERTED:
        for path in (ROOT / "plugins" / plugin).rglob("*.py"):
            source = path.read_text()
            assert "request.form" not in source, path
            assert not re.search(r"from core\.forms import|import core\.forms", source), path
