"""Amounts typed at a front desk, money shown on pages, and gapless per-clinic numbers."""
from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlmodel import Session

from core.models import Clinic, utcnow
from plugins.billing.errors import BillingError
from plugins.billing.models import BillingCounter

MAX_AMOUNT_CENTS = 10_000_000  # $100,000.00: anything larger is a typo at a clinic's front desk
METHODS = {"cash": "Cash", "card": "Card", "check": "Check", "package": "Package credit"}
PAYMENT_METHODS = ("cash", "card", "check")

_AMOUNT = re.compile(r"^\$?\s*(\d{1,9})(?:\.(\d{1,2}))?$")


def parse_amount(raw: str | None, *, field: str = "Amount") -> int:
    """Dollars typed in a form to integer cents, or a BillingError that says how to write it."""
    value = (raw or "").strip()
    if not value:
        raise BillingError(f"{field}: enter an amount such as 125.00.")
    if "," in value:
        raise BillingError(f"{field}: write the amount without commas, such as 1000.00.")
    if value.startswith("-"):
        raise BillingError(f"{field} must be more than zero.")
    match = _AMOUNT.match(value)
    if not match:
        raise BillingError(f"{field}: enter dollars and at most two decimals, such as 125.50.")
    cents = int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))
    if cents <= 0:
        raise BillingError(f"{field} must be more than zero.")
    if cents > MAX_AMOUNT_CENTS:
        raise BillingError(f"{field} is larger than any fee here ($100,000.00 at most): check the figure.")
    return cents


def dollars(cents: int) -> str:
    """Cents as a plain form value ("125.50"), for pre-filled inputs."""
    return f"{cents // 100}.{cents % 100:02d}"


def money(cents: int) -> str:
    from core.formatting import money as fmt

    return fmt(cents)


def local_date(clinic: Clinic, moment: datetime | None) -> date:
    """The clinic's calendar date of a UTC moment (now by default)."""
    return (moment or utcnow()).astimezone(ZoneInfo(clinic.timezone)).date()


def invoice_label(number: int) -> str:
    return f"INV-{number:06d}"


def next_number(session: Session, clinic_id: int, kind: str) -> int:
    """Take the next number of a per-clinic sequence inside the caller's transaction.

    One UPDATE ... RETURNING both locks the counter row (PostgreSQL row lock; SQLite already
    holds its write lock since BEGIN IMMEDIATE) and increments it, so numbers are unique, and
    a rolled-back transaction gives its number back: no gaps.
    """
    params = {"c": clinic_id, "k": kind}
    bump = text("UPDATE billing_counter SET last_value = last_value + 1 "
                "WHERE clinic_id = :c AND kind = :k RETURNING last_value")
    value = session.execute(bump, params).scalar()
    if value is None:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("INSERT INTO billing_counter (clinic_id, kind, last_value) VALUES (:c, :k, 0) "
                                 "ON CONFLICT DO NOTHING"), params)
        else:
            session.execute(text("INSERT OR IGNORE INTO billing_counter (clinic_id, kind, last_value) "
                                 "VALUES (:c, :k, 0)"), params)
        value = session.execute(bump, params).scalar()
    return int(value)


def counter_value(session: Session, clinic_id: int, kind: str) -> int:
    row = session.get(BillingCounter, (clinic_id, kind))
    return row.last_value if row else 0
