"""Checks shared by core forms and plugins: NPI, dates, phone numbers, codes."""
from __future__ import annotations

import unicodedata
from datetime import date

import phonenumbers


def clean_text(value: str | None) -> str:
    """Trim and normalise to NFC once, so names compare and search the same however typed."""
    return unicodedata.normalize("NFC", (value or "").strip())


def npi_is_valid(npi: str) -> bool:
    """Luhn over "80840" + the first nine digits; NPIs are ten digits starting with 1 or 2."""
    if len(npi) != 10 or not npi.isdigit() or npi[0] not in "12":
        return False
    digits = [int(c) for c in "80840" + npi]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def npi_with_check_digit(first9: str) -> str:
    """Complete a nine-digit NPI stem (used to make fictional demo NPIs)."""
    for check in "0123456789":
        if npi_is_valid(first9 + check):
            return first9 + check
    raise ValueError(first9)


def npi_problem(npi: str, *, kind: int | None = None) -> str | None:
    npi = npi.strip()
    if not npi_is_valid(npi):
        return "An NPI is 10 digits starting with 1 or 2, with a valid check digit."
    if kind == 1 and npi[0] != "1":
        return "An individual (type 1) NPI starts with 1."
    if kind == 2 and npi[0] != "2":
        return "An organization (type 2) NPI starts with 2."
    return None


def parse_date(value: str, *, field: str = "Date", not_future: bool = False,
               not_before: date | None = None) -> date:
    """ISO date or a ValueError with a message fit for the form."""
    try:
        parsed = date.fromisoformat((value or "").strip())
    except ValueError:
        raise ValueError(f"{field}: enter a real date as YYYY-MM-DD.") from None
    if parsed.year < 1900:
        raise ValueError(f"{field}: the year must be 1900 or later.")
    if not_future and parsed > date.today():
        raise ValueError(f"{field} cannot be in the future.")
    if not_before and parsed < not_before:
        raise ValueError(f"{field} cannot be before {not_before.isoformat()}.")
    return parsed


def phone_problem(value: str) -> str | None:
    if not value.strip():
        return None
    try:
        number = phonenumbers.parse(value, "US")
    except phonenumbers.NumberParseException:
        return "Enter a phone number such as 555-010-0123."
    if not phonenumbers.is_possible_number(number):
        return "That phone number has the wrong number of digits."
    return None


def format_phone(value: str) -> str:
    try:
        number = phonenumbers.parse(value, "US")
    except phonenumbers.NumberParseException:
        return value
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


def icd10_problem(code: str) -> str | None:
    """Billable ICD-10-CM codes only (F33.2 yes, F33 no), per the official code set."""
    import simple_icd_10_cm as cm

    code = code.strip().upper()
    if not cm.is_valid_item(code):
        return f"{code or 'That'} is not an ICD-10-CM code."
    if not cm.is_leaf(code):
        return f"{code} is a category; choose a billable code under it."
    return None


def icd10_description(code: str) -> str:
    import simple_icd_10_cm as cm

    return cm.get_description(code.strip().upper())


def ein_problem(ein: str) -> str | None:
    digits = ein.replace("-", "")
    if len(digits) != 9 or not digits.isdigit():
        return "An EIN is nine digits, written 12-3456789."
    return None


def db_int(value) -> int:
    """An id or count as posted, within a 32-bit integer column's range (SQLite and PostgreSQL refuse
    anything larger, which would otherwise surface as a 500); anything else raises ValueError, so a
    Werkzeug ``get(..., type=db_int)`` falls back to its default."""
    number = int(value)
    if not -2**31 < number < 2**31:
        raise ValueError("out of range")
    return number
