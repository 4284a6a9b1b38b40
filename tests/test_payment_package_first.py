"""Recording a payment for a patient with a prepaid package that has sessions left: the package is
the first method offered and is chosen unless staff change it; without one, nothing changes."""
from __future__ import annotations

import re

from sqlmodel import select

from core.db import new_session
from core.models import Patient
from plugins.billing.models import BillingPackage, BillingPayment
from tests.support import login, post
from tests.test_billing_web import _invoice_from_draft, _pay_form, complete_session, fresh


def _methods(html: str) -> tuple[list[str], str | None]:
    """The method options in page order, and the one a browser would send as it stands."""
    select_ = re.search(r'<select id="method" name="method"[^>]*>(.*?)</select>', html, re.S).group(1)
    options = re.findall(r'<option value="([^"]+)"( selected)?>', select_)
    chosen = next((v for v, sel in options if sel), options[0][0] if options else None)
    return [v for v, _ in options], chosen


def test_a_package_with_sessions_left_is_offered_first_and_used_by_default(app, client, db):
    package = db.exec(select(BillingPackage).order_by(BillingPackage.id)).first()
    patient, left = db.get(Patient, package.patient_id), package.sessions_total - package.sessions_used
    login(app, client, "manager")
    tid, _pid = complete_session(app, patient.mrn)
    iid = _invoice_from_draft(app, client, tid)
    html = client.get(f"/billing/invoices/{iid}").text
    methods, chosen = _methods(html)
    assert methods[0] == "package" and chosen == "package"
    assert f'<option value="{package.id}">{package.name}: {left} left' in html

    key, seen = _pay_form(client, iid)
    resp = post(app, client, f"/billing/invoices/{iid}/payments",
                {"method": chosen, "package_id": str(package.id), "amount": "", "idempotency_key": key,
                 "seen_balance": seen})
    assert resp.status_code == 302
    fresh(db)
    assert db.exec(select(BillingPayment).where(BillingPayment.invoice_id == iid)).one().package_id == package.id
    db.refresh(package)
    assert package.sessions_total - package.sessions_used == left - 1


def test_without_a_package_or_once_it_is_used_up_cash_card_and_check_are_offered(app, client, db):
    package = db.exec(select(BillingPackage).order_by(BillingPackage.id)).first()
    other = db.exec(select(Patient).where(Patient.clinic_id == package.clinic_id, Patient.id != package.patient_id)
                    .order_by(Patient.mrn)).first()
    login(app, client, "manager")
    iid = _invoice_from_draft(app, client, complete_session(app, other.mrn)[0])
    assert _methods(client.get(f"/billing/invoices/{iid}").text) == (["cash", "card", "check"], "cash")

    with new_session(app.extensions["glia"].engine) as w:
        used = w.get(BillingPackage, package.id)
        used.sessions_used = used.sessions_total
        w.add(used)
        w.commit()
    mine = _invoice_from_draft(app, client, complete_session(app, db.get(Patient, package.patient_id).mrn)[0])
    assert _methods(client.get(f"/billing/invoices/{mine}").text)[0] == ["cash", "card", "check"]
