"""Plain form validation for the core pages: read only the named fields, collect messages per field.

Views re-render the form with these messages and HTTP 422 when anything is wrong; the request
then rolls back, so bad input never writes. Fields a form does not name (patient_id, status,
role...) are never read, which is what keeps mass assignment out.
"""
from __future__ import annotations

from datetime import date, time
from zoneinfo import available_timezones

from email_validator import EmailNotValidError, validate_email

from core.validators import clean_text, ein_problem, npi_problem, parse_date, phone_problem


class Form:
    """Reads fields from request.form, remembers cleaned values and per-field errors."""

    def __init__(self, data):
        self.data = data
        self.values: dict[str, object] = {}
        self.errors: dict[str, str] = {}

    @property
    def ok(self) -> bool:
        return not self.errors

    def text(self, name: str, label: str, *, required: bool = False, max_len: int = 200) -> str:
        value = clean_text(self.data.get(name, ""))
        self.values[name] = value
        if required and not value:
            self.errors[name] = f"{label} is required."
        elif len(value) > max_len:
            self.errors[name] = f"{label}: at most {max_len} characters."
        return value

    def date(self, name: str, label: str, *, required: bool = True, not_future: bool = False) -> date | None:
        raw = clean_text(self.data.get(name, ""))
        self.values[name] = raw
        if not raw:
            if required:
                self.errors[name] = f"{label} is required."
            return None
        try:
            return parse_date(raw, field=label, not_future=not_future)
        except ValueError as exc:
            self.errors[name] = str(exc)
            return None

    def time(self, name: str, label: str) -> time | None:
        raw = clean_text(self.data.get(name, ""))
        self.values[name] = raw
        try:
            return time.fromisoformat(raw)
        except ValueError:
            self.errors[name] = f"{label}: enter a time such as 09:30."
            return None

    def number(self, name: str, label: str, lo: float, hi: float, *, required: bool = True,
               integer: bool = True) -> float | int | None:
        raw = clean_text(self.data.get(name, ""))
        self.values[name] = raw
        if not raw:
            if required:
                self.errors[name] = f"{label} is required."
            return None
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            self.errors[name] = f"{label}: enter a {'whole ' if integer else ''}number."
            return None
        if not lo <= value <= hi:  # also refuses NaN and infinities
            self.errors[name] = f"{label} must be between {lo:g} and {hi:g}."
            return None
        return value

    def choice(self, name: str, label: str, choices, *, required: bool = True) -> str | None:
        raw = clean_text(self.data.get(name, ""))
        self.values[name] = raw
        if raw in choices:
            return raw
        if raw or required:
            self.errors[name] = f"Choose a {label.lower()}."
        return None

    def phone(self, name: str, label: str) -> str:
        value = self.text(name, label, max_len=30)
        if value and name not in self.errors and (problem := phone_problem(value)):
            self.errors[name] = f"{label}: {problem}"
        return value

    def email(self, name: str, label: str, *, required: bool = False) -> str:
        value = self.text(name, label, required=required, max_len=254)
        if value and name not in self.errors:
            try:
                value = validate_email(value, check_deliverability=False).normalized
                self.values[name] = value
            except EmailNotValidError:
                self.errors[name] = f"{label}: enter an address such as name@example.com."
        return value

    def npi(self, name: str, label: str, *, kind: int | None = None, required: bool = False) -> str:
        value = self.text(name, label, required=required, max_len=10)
        if value and name not in self.errors and (problem := npi_problem(value, kind=kind)):
            self.errors[name] = problem
        return value

    def ein(self, name: str, label: str) -> str:
        value = self.text(name, label, max_len=10)
        if value and (problem := ein_problem(value)):
            self.errors[name] = problem
        return value

    def state(self, name: str, label: str = "State") -> str:
        value = self.text(name, label, max_len=2).upper()
        self.values[name] = value
        if value and not (len(value) == 2 and value.isalpha()):
            self.errors[name] = "Use the two-letter state code, such as OR."
        return value

    def postal(self, name: str, label: str = "ZIP code") -> str:
        value = self.text(name, label, max_len=10)
        digits = value.replace("-", "")
        if value and not (digits.isdigit() and len(digits) in (5, 9)):
            self.errors[name] = "Enter a ZIP code such as 97477 or 97477-1234."
        return value

    def timezone(self, name: str, label: str = "Time zone") -> str:
        value = self.text(name, label, required=True, max_len=64)
        if value and value not in available_timezones():
            self.errors[name] = "Choose a time zone from the list, such as America/New_York."
        return value

    def checked(self, name: str) -> bool:
        value = self.data.get(name) in ("1", "on", "yes", "true")
        self.values[name] = value
        return value


def vitals(form: Form, prefix: str) -> dict | None:
    """Blood pressure, pulse and SpO2 from ``<prefix>_systolic`` etc., checked for plausibility."""
    sys_ = form.number(f"{prefix}_systolic", "Systolic pressure", 50, 260)
    dia = form.number(f"{prefix}_diastolic", "Diastolic pressure", 20, 180)
    hr = form.number(f"{prefix}_heart_rate", "Heart rate", 20, 250, required=False)
    spo2 = form.number(f"{prefix}_spo2", "SpO2", 50, 100, required=False)
    if sys_ is not None and dia is not None and dia >= sys_:
        form.errors[f"{prefix}_diastolic"] = "Diastolic pressure must be below systolic."
    if sys_ is None or dia is None or f"{prefix}_diastolic" in form.errors:
        return None
    return {"systolic": sys_, "diastolic": dia, "heart_rate": hr, "spo2": spo2}
