"""Money never drifts: concurrent payments and invoice numbers, and balances that always add up."""
from __future__ import annotations

import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import IntegrityError
from sqlmodel import func, select

from core.db import new_session
from core.models import Clinic, Patient, Provider, utcnow
from plugins.billing import service
from plugins.billing.models import BillingCharge, BillingInvoice, BillingPayment
from plugins.billing.service import BillingError


def make_invoice(engine, total_cents: int = 50_000, *, commit: bool = True, session=None):
    """A one-line invoice for a stillwater patient, made through the billing rules."""
    s = session or new_session(engine)
    clinic = s.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
    patient = s.exec(select(Patient).where(Patient.clinic_id == clinic.id).order_by(Patient.id)).first()
    provider = s.exec(select(Provider).where(Provider.clinic_id == clinic.id)).first()
    charge = BillingCharge(clinic_id=clinic.id, patient_id=patient.id, provider_id=provider.id,
                           service_date=utcnow().date(), code="96365", descriptor="IV infusion, first hour",
                           unit_price_cents=total_cents, amount_cents=total_cents, created_at=utcnow())
    s.add(charge)
    s.flush()
    invoice = service.create_invoice(s, clinic.id, patient.id, [charge.id], None)
    ids = (clinic.id, invoice.id, invoice.number)
    if commit:
        s.commit()
    if session is None:
        s.close()
    return ids


def run_threads(n, target):
    barrier = threading.Barrier(n)
    results = [None] * n

    def run(i):
        barrier.wait()
        results[i] = target(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def pay_in_thread(engine, clinic_id, iid, amount, key):
    s = new_session(engine)
    try:
        payment, replayed = service.record_payment(s, clinic_id, iid, amount_cents=amount, method="card", key=key)
        s.commit()
        return ("ok", payment.id, replayed)
    except BillingError as exc:
        s.rollback()
        return ("refused", exc.status, None)
    except IntegrityError:
        s.rollback()
        return ("duplicate", None, None)
    finally:
        s.close()


def count_payments(engine, iid):
    with new_session(engine, write=False) as s:
        return s.exec(select(func.count()).select_from(BillingPayment).where(BillingPayment.invoice_id == iid)).one()


def test_concurrent_double_submit_records_one_payment(app):
    engine = app.extensions["glia"].engine
    clinic_id, iid, _ = make_invoice(engine)
    results = run_threads(8, lambda i: pay_in_thread(engine, clinic_id, iid, 10_000, "same-form-key"))
    assert count_payments(engine, iid) == 1
    assert {r[0] for r in results} == {"ok"}  # every submit answers like the first one
    assert len({r[1] for r in results}) == 1 and sum(1 for r in results if not r[2]) == 1

    # the same key with another amount is refused, not recorded
    results = run_threads(2, lambda i: pay_in_thread(engine, clinic_id, iid, 2_000 + i, "other-key"))
    assert sorted(r[0] for r in results) == ["ok", "refused"]
    assert [r[1] for r in results if r[0] == "refused"] == [422]
    assert count_payments(engine, iid) == 2


def test_concurrent_payments_never_overdraw(app):
    engine = app.extensions["glia"].engine
    clinic_id, iid, _ = make_invoice(engine, 50_000)
    results = run_threads(4, lambda i: pay_in_thread(engine, clinic_id, iid, 30_000, f"key-{i}"))
    assert sorted(r[0] for r in results) == ["ok", "refused", "refused", "refused"]
    with new_session(engine, write=False) as s:
        inv = s.get(BillingInvoice, iid)
        assert service.invoice_totals(s, [inv])[iid].balance == 20_000


def test_concurrent_invoices_get_gapless_numbers(app):
    engine = app.extensions["glia"].engine
    with new_session(engine, write=False) as s:
        clinic = s.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
        start = service.counter_value(s, clinic.id, "invoice")

    def create(i):
        made = []
        for k in range(6):
            s = new_session(engine)
            try:
                _, _, number = make_invoice(engine, 1_000, commit=False, session=s)
                if (i + k) % 4 == 0:
                    s.rollback()  # a creation that fails must not use up its number
                else:
                    s.commit()
                    made.append(number)
            finally:
                s.close()
        return made

    numbers = sorted(n for made in run_threads(8, create) for n in made)
    assert numbers == list(range(start + 1, start + 1 + len(numbers)))
    assert len(numbers) == 8 * 6 - 12


amount_text = st.one_of(
    st.integers(-10**6, 10**12).map(str),
    st.decimals(allow_nan=True, allow_infinity=True, places=None).map(str),
    st.text(alphabet="0123456789.,-e$ ", max_size=12),
)


@given(amount_text)
def test_amount_parsing_accepts_only_plain_cents(raw):
    try:
        cents = service.parse_amount(raw)
    except BillingError as exc:
        assert exc.status == 422 and exc.message
        return
    assert isinstance(cents, int) and 0 < cents <= service.MAX_AMOUNT_CENTS
    assert service.parse_amount(service.dollars(cents)) == cents


@pytest.mark.parametrize("raw", ["-5", "0", "0.00", "NaN", "Infinity", "1e9", "0.001", "1,000", "", "12.3.4",
                                 "100000.01"])
def test_bad_amounts_are_refused(raw):
    with pytest.raises(BillingError):
        service.parse_amount(raw)


ops = st.lists(st.one_of(
    st.tuples(st.just("pay"), st.integers(1, 70_000)),
    st.tuples(st.just("refund"), st.integers(0, 5), st.integers(1, 70_000)),
    st.tuples(st.just("replay"), st.integers(0, 5)),
), max_size=10)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=ops)
def test_balance_always_adds_up(app, steps):
    """charges - payments + refunds = balance, whatever sequence of payments and refunds is tried."""
    engine = app.extensions["glia"].engine
    clinic_id, iid, _ = make_invoice(engine, 60_000)
    done: list[tuple[str, int, int]] = []  # (key, payment id, amount)
    paid = refunded = 0
    for n, step in enumerate(steps):
        s = new_session(engine)
        try:
            if step[0] == "pay":
                key = f"p{iid}-{n}"
                payment, _ = service.record_payment(s, clinic_id, iid, amount_cents=step[1], method="cash", key=key)
                done.append((key, payment.id, step[1]))
                paid += step[1]
            elif step[0] == "refund" and done:
                _key, pay_id, _amount = done[step[1] % len(done)]
                service.record_refund(s, clinic_id, pay_id, amount_cents=step[2], key=f"r{iid}-{n}")
                refunded += step[2]
            elif step[0] == "replay" and done:
                key, pay_id, amount = done[step[1] % len(done)]
                payment, replayed = service.record_payment(s, clinic_id, iid, amount_cents=amount, method="cash",
                                                           key=key)
                assert replayed and payment.id == pay_id
            s.commit()
        except BillingError:
            s.rollback()
        finally:
            s.close()
        with new_session(engine, write=False) as r:
            inv = r.get(BillingInvoice, iid)
            totals = service.invoice_totals(r, [inv])[iid]
            rows = r.exec(select(BillingPayment).where(BillingPayment.invoice_id == iid)).all()
            db_paid = sum(p.amount_cents for p in rows if p.kind == "payment")
            db_refunded = sum(p.amount_cents for p in rows if p.kind == "refund")
        assert (totals.paid, totals.refunded) == (db_paid, db_refunded) == (paid, refunded)
        assert totals.balance == inv.total_cents - db_paid + db_refunded
        assert 0 <= totals.balance <= inv.total_cents
