"""Payments, refunds and corrections (new entries, never edits), balances and receipts."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func
from sqlmodel import Session, select

from core.models import Patient, utcnow
from plugins.billing.documents import void, voids
from plugins.billing.errors import BillingError
from plugins.billing.models import BillingCharge, BillingInvoice, BillingPackage, BillingPayment, BillingVoid
from plugins.billing.money import METHODS, invoice_label, local_date, money


@dataclass
class Totals:
    total: int = 0
    paid: int = 0
    refunded: int = 0
    void: bool = False  # a void invoice owes nothing

    @property
    def balance(self) -> int:
        """Charges - payments + refunds."""
        return 0 if self.void else self.total - self.paid + self.refunded

    @property
    def net_paid(self) -> int:
        return self.paid - self.refunded


def _live_payments():
    """Payments and refunds that count: every entry except those voided as entered in error."""
    voided = select(BillingVoid.document_id).where(BillingVoid.document_type == "payment")
    return BillingPayment.id.not_in(voided)


def invoice_totals(session: Session, invoices: list[BillingInvoice]) -> dict[int, Totals]:
    """Totals for many invoices with two queries (never a query per row)."""
    out = {inv.id: Totals(total=inv.total_cents) for inv in invoices}
    if not out:
        return out
    rows = session.exec(select(BillingPayment.invoice_id, BillingPayment.kind, func.sum(BillingPayment.amount_cents))
                        .where(BillingPayment.invoice_id.in_(list(out)), _live_payments())
                        .group_by(BillingPayment.invoice_id, BillingPayment.kind)).all()
    for invoice_id, kind, amount in rows:
        if kind == "payment":
            out[invoice_id].paid = int(amount)
        else:
            out[invoice_id].refunded = int(amount)
    clinic_id = invoices[0].clinic_id
    for invoice_id in voids(session, clinic_id, "invoice", list(out)):
        out[invoice_id].void = True
    return out


def _lock_invoice(session: Session, clinic_id: int, invoice_id: int) -> BillingInvoice:
    invoice = session.exec(select(BillingInvoice).where(BillingInvoice.id == invoice_id,
                                                        BillingInvoice.clinic_id == clinic_id)
                           .with_for_update().execution_options(populate_existing=True)).first()
    if invoice is None:
        raise BillingError("No such invoice.", 404)
    return invoice


def _body_hash(*parts) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def _check_key(key: str) -> None:
    """Every money form carries the key its page handed out (letters, digits, - and _)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", key or ""):
        raise BillingError("This form is missing its submission key: reload the page and try again.", 400)


def _replayed(session: Session, clinic_id: int, key: str, digest: str) -> BillingPayment | None:
    earlier = session.exec(select(BillingPayment).where(BillingPayment.clinic_id == clinic_id,
                                                        BillingPayment.idempotency_key == key)).first()
    if earlier is not None and earlier.request_hash != digest:
        raise BillingError("This form was already submitted with different details: reload the page and "
                           "enter it again.", 422)
    return earlier


def record_payment(session: Session, clinic_id: int, invoice_id: int, *, amount_cents: int | None, method: str,
                   key: str, reference: str = "", package_id: int | None = None, user_id: int | None = None,
                   seen_balance: int | None = None, replaces_id: int | None = None) -> tuple[BillingPayment, bool]:
    """Record a payment once per idempotency key; returns (payment, replayed).

    The invoice row is locked first, so two submits of one form, or two payments racing for
    the same balance, are decided one after the other on both databases.
    """
    if method not in METHODS:
        raise BillingError("Choose how the patient paid: cash, card, check or package credit.")
    _check_key(key)
    invoice = _lock_invoice(session, clinic_id, invoice_id)
    digest = _body_hash(invoice.id, "payment", method, amount_cents, reference, package_id, replaces_id or "")
    earlier = _replayed(session, clinic_id, key, digest)
    if earlier is not None:
        return earlier, True
    totals = invoice_totals(session, [invoice])[invoice.id]
    if totals.void:
        raise BillingError(f"{invoice_label(invoice.number)} is void: nothing is owed on it.", 409)
    balance = totals.balance
    if balance <= 0:
        raise BillingError(f"{invoice_label(invoice.number)} is already paid in full.", 409)
    package = None
    if method == "package":
        package = session.exec(select(BillingPackage).where(
            BillingPackage.id == (package_id or -1), BillingPackage.clinic_id == clinic_id,
            BillingPackage.patient_id == invoice.patient_id).with_for_update()
            .execution_options(populate_existing=True)).first()
        if package is None:
            raise BillingError("Choose one of this patient's packages to draw a session from.")
        if package.sessions_used >= package.sessions_total:
            raise BillingError(f"The package \u201c{package.name}\u201d has no sessions left.", 409)
        amount_cents = balance  # one prepaid session covers this visit's balance
        package.sessions_used += 1
        session.add(package)
    if amount_cents is None:
        raise BillingError("Amount: enter an amount such as 125.00.")
    if amount_cents > balance:
        status = 409 if seen_balance is not None and seen_balance != balance else 422
        raise BillingError(f"The amount is more than the balance of {money(balance)}: enter at most "
                           f"{money(balance)}.", status)
    payment = BillingPayment(clinic_id=clinic_id, patient_id=invoice.patient_id, invoice_id=invoice.id,
                             kind="payment", method=method, amount_cents=amount_cents, reference=reference[:60],
                             package_id=package.id if package else None, replaces_id=replaces_id,
                             idempotency_key=key, request_hash=digest, received_at=utcnow(), recorded_by_id=user_id)
    session.add(payment)
    session.flush()
    return payment, False


def _refunded(session: Session, payment_id: int) -> int:
    return int(session.exec(select(func.coalesce(func.sum(BillingPayment.amount_cents), 0)).where(
        BillingPayment.refund_of_id == payment_id, _live_payments())).one())


def _live_payment(session: Session, clinic_id: int, payment_id: int) -> BillingPayment:
    original = session.exec(select(BillingPayment).where(BillingPayment.id == payment_id,
                                                         BillingPayment.clinic_id == clinic_id,
                                                         BillingPayment.kind == "payment")).first()
    if original is None:
        raise BillingError("No such payment.", 404)
    if voids(session, clinic_id, "payment", [original.id]):
        raise BillingError(f"Receipt {original.receipt_label} is void: it was corrected by another entry.", 409)
    return original


def record_refund(session: Session, clinic_id: int, payment_id: int, *, amount_cents: int, key: str,
                  user_id: int | None = None) -> tuple[BillingPayment, bool]:
    """A refund is a new entry against an earlier payment, never an edit of it; keyed like a payment."""
    _check_key(key)
    original = _live_payment(session, clinic_id, payment_id)
    invoice = _lock_invoice(session, clinic_id, original.invoice_id)
    digest = _body_hash(invoice.id, "refund", payment_id, amount_cents)
    earlier = _replayed(session, clinic_id, key, digest)
    if earlier is not None:
        return earlier, True
    left = original.amount_cents - _refunded(session, original.id)
    if amount_cents > left:
        raise BillingError(f"A refund can return at most what is left of this payment: {money(left)}.", 422)
    if original.package_id is not None:
        package = session.get(BillingPackage, original.package_id)
        if amount_cents != left:
            raise BillingError("A package credit is returned whole: refund the full amount.")
        package.sessions_used = max(0, package.sessions_used - 1)
        session.add(package)
    refund = BillingPayment(clinic_id=clinic_id, patient_id=original.patient_id, invoice_id=invoice.id,
                            kind="refund", method=original.method, amount_cents=amount_cents,
                            package_id=original.package_id, refund_of_id=original.id, idempotency_key=key,
                            request_hash=digest, received_at=utcnow(), recorded_by_id=user_id)
    session.add(refund)
    session.flush()
    return refund, False


def correct_payment(session: Session, clinic_id: int, payment_id: int, *, amount_cents: int, method: str,
                    reference: str, reason: str, key: str, user_id: int | None) -> tuple[BillingPayment, bool]:
    """A payment entered wrong (amount, method, reference): its receipt is voided and a corrected entry replaces it."""
    _check_key(key)
    original = session.exec(select(BillingPayment).where(BillingPayment.id == payment_id,
                                                         BillingPayment.clinic_id == clinic_id)).first()
    if original is None or original.kind != "payment":
        raise BillingError("No such payment.", 404)
    digest = _body_hash(original.invoice_id, "payment", method, amount_cents, reference, None, original.id)
    earlier = _replayed(session, clinic_id, key, digest)
    if earlier is not None:
        return earlier, True
    _live_payment(session, clinic_id, payment_id)
    if original.package_id is not None or method == "package":
        raise BillingError("A package credit is corrected by refunding it, which returns the session.")
    if method not in METHODS:
        raise BillingError("Choose how the patient paid: cash, card or check.")
    if _refunded(session, original.id):
        raise BillingError("This payment has refunds against it: it cannot be corrected, only refunded.", 409)
    _lock_invoice(session, clinic_id, original.invoice_id)
    with session.begin_nested():  # a refused correction leaves the payment as it was, even on the error page
        void(session, clinic_id, "payment", original.id, reason, user_id)
        return record_payment(session, clinic_id, original.invoice_id, amount_cents=amount_cents, method=method,
                              key=key, reference=reference, user_id=user_id, replaces_id=original.id)


def refundable(session: Session, payments: list[BillingPayment]) -> dict[int, int]:
    """payment id -> what may still be refunded (voided entries count for nothing)."""
    if not payments:
        return {}
    dead = voids(session, payments[0].clinic_id, "payment", [p.id for p in payments])
    refunded: dict[int, int] = {}
    for p in payments:
        if p.kind == "refund" and p.refund_of_id and p.id not in dead:
            refunded[p.refund_of_id] = refunded.get(p.refund_of_id, 0) + p.amount_cents
    return {p.id: p.amount_cents - refunded.get(p.id, 0) for p in payments if p.kind == "payment" and p.id not in dead}


def aging(session: Session, clinic_id: int, today: date) -> tuple[list[tuple[BillingInvoice, Totals, int]], dict]:
    """Open invoices with their balance and age in days, and the total per age bucket."""
    invoices = session.exec(select(BillingInvoice).where(BillingInvoice.clinic_id == clinic_id)
                            .order_by(BillingInvoice.issued_at)).all()
    totals = invoice_totals(session, list(invoices))
    rows, buckets = [], {"0-30": 0, "31-60": 0, "61-90": 0, "90+": 0}
    for inv in invoices:
        t = totals[inv.id]
        if t.balance <= 0:
            continue
        age = (today - inv.issued_at.date()).days
        bucket = "0-30" if age <= 30 else "31-60" if age <= 60 else "61-90" if age <= 90 else "90+"
        buckets[bucket] += t.balance
        rows.append((inv, t, age))
    return rows, buckets


def method_text(session: Session, payment: BillingPayment, clinic) -> str:
    """How a payment was made, as a payer reads it: "Card (4242)", "Package credit (... paid by card on ...)"."""
    text = METHODS[payment.method] + (f" ({payment.reference})" if payment.reference else "")
    if payment.package_id:
        package = session.get(BillingPackage, payment.package_id)
        text += (f": {package.name}, prepaid by {METHODS[package.method].lower()} on "
                 f"{local_date(clinic, package.created_at).strftime('%m/%d/%Y')}")
    return text


def receipt(session: Session, clinic, payment: BillingPayment) -> dict:
    """What a receipt shows: the entry, the dates of service and items it paid, and the invoice's
    balance right after this entry (a receipt reads the same whenever it is downloaded)."""
    invoice = session.get(BillingInvoice, payment.invoice_id)
    patient = session.get(Patient, payment.patient_id)
    lines = session.exec(select(BillingCharge).where(BillingCharge.invoice_id == invoice.id,
                                                     BillingCharge.clinic_id == clinic.id)
                         .order_by(BillingCharge.service_date, BillingCharge.id)).all()
    dead = voids(session, clinic.id, "payment", [payment.id]).get(payment.id)
    replacement = session.exec(select(BillingPayment).where(BillingPayment.clinic_id == clinic.id,
                                                            BillingPayment.replaces_id == payment.id)).first()
    refund_of = session.get(BillingPayment, payment.refund_of_id) if payment.refund_of_id else None
    earlier = session.exec(select(BillingPayment).where(BillingPayment.invoice_id == invoice.id,
                                                        BillingPayment.received_at <= payment.received_at,
                                                        BillingPayment.id <= payment.id,
                                                        _live_payments() | (BillingPayment.id == payment.id))).all()
    after = Totals(total=invoice.total_cents, paid=sum(p.amount_cents for p in earlier if p.kind == "payment"),
                   refunded=sum(p.amount_cents for p in earlier if p.kind == "refund"))
    mark = None
    if dead:
        mark = {"date": local_date(clinic, dead.voided_at), "reason": dead.reason, "sha256": "",
                "replacement": f"receipt {replacement.receipt_label}" if replacement else ""}
    return {"payment": payment, "inv": invoice, "patient": patient, "lines": lines,
            "dates": sorted({c.service_date for c in lines}), "totals": after,
            "received": local_date(clinic, payment.received_at), "method": method_text(session, payment, clinic),
            "void": mark, "replacement": replacement, "refund_of": refund_of,
            "replaces": session.get(BillingPayment, payment.replaces_id) if payment.replaces_id else None}
