"""Cancel, no-show, refund and void ask first: the button's POST shows what will happen and writes
nothing; only the second POST (confirm=yes, with its CSRF token) acts. Plain forms, no JavaScript."""
from __future__ import annotations

import re

import pytest
from sqlmodel import func, select

from core import audit_chain
from core.models import AuditEvent, Clinic, Patient, SessionStatus, TreatmentSession
from plugins.billing.models import BillingCharge, BillingEstimate, BillingInvoice, BillingPayment, BillingVoid
from plugins.billing.money import invoice_label
from tests.support import login, post
from tests.test_billing_documents import paid_superbill
from tests.test_billing_web import _invoice_from_draft, complete_session, fresh

S = SessionStatus


def _rows(db) -> dict:
    fresh(db)
    return {model.__name__: db.exec(select(func.count()).select_from(model)).one()
            for model in (AuditEvent, BillingPayment, BillingVoid, BillingInvoice, BillingCharge, TreatmentSession)}


def _chain_ok(app) -> bool:
    with app.extensions["glia"].engine.connect() as conn:
        return audit_chain.verify(conn, app.extensions["glia_audit_key"]).problem == ""


def _asks(resp, action: str, button: str, *facts: str) -> str:
    """The confirmation page: what will happen, a confirm=yes form to ``action`` and a way back."""
    assert resp.status_code == 200, resp.text[:1000]
    html = resp.text
    form = re.search(rf'<form method="post" action="{re.escape(action)}">(.*?)</form>', html, re.S)
    assert form, "no confirmation form"
    assert 'name="confirm" value="yes"' in form.group(1) and 'name="csrf_token"' in form.group(1)
    assert f">{button}</button>" in form.group(1) and ">Go back</a>" in form.group(1)
    for fact in facts:
        assert fact in html, fact
    return html


def _scheduled(db, slug="stillwater") -> tuple[TreatmentSession, Patient]:
    clinic = db.exec(select(Clinic).where(Clinic.slug == slug)).one()
    t = db.exec(select(TreatmentSession).where(TreatmentSession.clinic_id == clinic.id,
                                               TreatmentSession.status == S.scheduled)
                .order_by(TreatmentSession.id)).first()
    return t, db.get(Patient, t.patient_id)


@pytest.mark.parametrize("step, to, button", [("cancel", S.cancelled, "Yes, cancel the session"),
                                              ("no-show", S.no_show, "Yes, mark no-show")])
def test_ending_a_session_asks_first_and_only_the_confirmation_writes(app, client, db, step, to, button):
    t, patient = _scheduled(db)
    login(app, client, "frontdesk")
    detail = client.get(f"/sessions/{t.id}").text
    assert f'action="/sessions/{t.id}/{step}"' in detail
    before = _rows(db)
    url = f"/sessions/{t.id}/{step}"
    html = _asks(post(app, client, url, {"version": t.version}), url, button, patient.display_name, "Go back")
    assert f'href="/sessions/{t.id}"' in html and f'name="version" value="{t.version}"' in html
    assert _rows(db) == before and db.get(TreatmentSession, t.id).status == S.scheduled and _chain_ok(app)

    assert client.post(url, data={"version": t.version, "confirm": "yes"}).status_code == 400  # no CSRF token
    assert _rows(db) == before and db.get(TreatmentSession, t.id).status == S.scheduled

    done = post(app, client, url, {"version": t.version, "confirm": "yes"})
    assert done.status_code == 302
    fresh(db)
    assert db.get(TreatmentSession, t.id).status == to
    assert db.exec(select(AuditEvent.action).order_by(AuditEvent.id.desc())).first() == f"session.{to.value}"
    assert _chain_ok(app)
    # a stale or repeated form is refused at the first step already
    assert post(app, client, url, {"version": t.version}).status_code == 409


def test_a_refund_names_the_receipt_and_amount_before_it_is_recorded(app, client, db):
    login(app, client, "manager")
    pid, iid, _day, _sid = paid_superbill(app, client, db)
    payment = db.exec(select(BillingPayment).where(BillingPayment.invoice_id == iid)).one()
    patient = db.get(Patient, pid)
    before = _rows(db)
    url = f"/billing/payments/{payment.id}/refund"
    form = {"amount": "12.50", "idempotency_key": "refund-confirm"}
    _asks(post(app, client, url, form), url, "Yes, refund $12.50", patient.display_name, payment.receipt_label,
          invoice_label(db.get(BillingInvoice, iid).number))
    assert _rows(db) == before and _chain_ok(app)
    bad = post(app, client, url, {**form, "amount": "-3"})
    assert bad.status_code == 422 and _rows(db) == before

    assert post(app, client, url, {**form, "confirm": "yes"}).status_code == 302
    fresh(db)
    refund = db.exec(select(BillingPayment).where(BillingPayment.refund_of_id == payment.id)).one()
    assert refund.amount_cents == 1250 and _chain_ok(app)


def test_voiding_an_invoice_asks_with_its_total_and_keeps_the_reason(app, client, db):
    login(app, client, "manager")
    tid, pid = complete_session(app)
    iid = _invoice_from_draft(app, client, tid)
    inv = db.get(BillingInvoice, iid)
    before = _rows(db)
    url = f"/billing/invoices/{iid}/void"
    html = _asks(post(app, client, url, {"reason": "Pointer <B>"}), url, "Yes, void the invoice",
                 invoice_label(inv.number), db.get(Patient, pid).display_name)
    assert 'value="Pointer &lt;B&gt;"' in html and f'href="/billing/invoices/{iid}"' in html
    assert _rows(db) == before and _chain_ok(app)
    assert post(app, client, url, {"reason": "", "confirm": "yes"}).status_code == 422
    assert _rows(db) == before
    assert post(app, client, url, {"reason": "Pointer should be B", "confirm": "yes"}).status_code == 302
    fresh(db)
    assert db.exec(select(BillingVoid).where(BillingVoid.document_type == "invoice",
                                             BillingVoid.document_id == iid)).one().reason == "Pointer should be B"


def test_voiding_a_superbill_or_an_estimate_asks_first(app, client, db):
    login(app, client, "manager")
    pid, _iid, _day, sid = paid_superbill(app, client, db)
    before = _rows(db)
    url = f"/billing/superbills/{sid}/void"
    html = _asks(post(app, client, url, {"reason": "Wrong pointer", "reissue": "1"}), url, "Yes, void the superbill",
                 db.get(Patient, pid).display_name)
    assert re.search(r'name="reissue" value="1" checked', html) and 'value="Wrong pointer"' in html
    unticked = post(app, client, url, {"reason": "Wrong pointer"}).text
    assert re.search(r'name="reissue" value="1">', unticked)
    assert _rows(db) == before and _chain_ok(app)
    assert post(app, client, url, {"reason": "Wrong pointer", "confirm": "yes"}).status_code == 302
    fresh(db)
    assert _rows(db)["BillingVoid"] == before["BillingVoid"] + 1

    est = db.exec(select(BillingEstimate).order_by(BillingEstimate.id)).first()
    before = _rows(db)
    url = f"/billing/estimates/{est.id}/void"
    _asks(post(app, client, url, {"reason": "Plan changed"}), url, "Yes, void the estimate",
          db.get(Patient, est.patient_id).display_name)
    assert _rows(db) == before and _chain_ok(app)
    assert post(app, client, url, {"reason": "Plan changed", "confirm": "yes"}).status_code == 302
    fresh(db)
    assert _rows(db)["BillingVoid"] == before["BillingVoid"] + 1
