"""Jinja filters: times in the clinic's zone, money with Babel, labels."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.numbers import format_currency
from flask import g


def local(value: datetime | None, fmt: str = "%b %d, %Y %I:%M %p") -> str:
    """A UTC time shown in the current clinic's time zone."""
    if value is None:
        return ""
    clinic = g.get("clinic")
    zone = ZoneInfo(clinic.timezone if clinic else "UTC")
    return value.astimezone(zone).strftime(fmt)


def local_time(value: datetime | None) -> str:
    return local(value, "%I:%M %p").lstrip("0")


def ymd(value: date | datetime | None) -> str:
    return value.strftime("%m/%d/%Y") if value else ""


def money(cents: int | None, currency: str = "USD") -> str:
    """Integer cents to display money, e.g. 12345 -> $123.45."""
    return format_currency(Decimal(cents or 0).scaleb(-2), currency, locale="en_US")


def label(value) -> str:
    """An enum or code as words: modalities by their clinical name, anything else capitalised."""
    from core.models import MODALITY_LABELS, Modality

    raw = str(getattr(value, "value", value) or "")
    if raw in Modality._value2member_map_:
        return MODALITY_LABELS[Modality(raw)]
    return raw.replace("_", " ").capitalize()


FILTERS = {"local": local, "local_time": local_time, "ymd": ymd, "money": money, "label": label}
