"""Forms on WTForms (Flask-WTF): typed fields that carry the messages staff read.

Every form reads only the fields it declares, so a posted clinic_id, role or status is never
read (mass assignment stays impossible). A refused form is shown again with HTTP 422, a message
per field and the values as typed; the request then rolls back, so bad input writes nothing.
CSRF is checked for every POST by the app-wide CSRFProtect before any view runs, so forms do not
check it a second time. The templates' field macros take ``form.values`` and ``form.messages``.
"""
from __future__ import annotations

from datetime import date, time
from zoneinfo import available_timezones

from email_validator import EmailNotValidError, validate_email
from flask_wtf import FlaskForm
from wtforms import BooleanField, FormField, StringField
from wtforms.validators import StopValidation, ValidationError

from core.validators import clean_text, db_int, ein_problem, npi_problem, parse_date, phone_problem


def _clean(value):
    return clean_text(value) if isinstance(value, str) or value is None else value


class GliaForm(FlaskForm):
    """The base of every form: messages and values shaped for the field macros."""

    class Meta:
        csrf = False  # CSRFProtect has already checked this POST

    def _flat(self):
        """Every field, the fields of an embedded FormField (say vitals under ``baseline_``) by their posted names."""
        for f in self:
            yield from (f.form if isinstance(f, FormField) else (f,))

    @property
    def messages(self) -> dict[str, str]:
        """Field name -> its first message (what the macros show under the field)."""
        return {f.name: f.errors[0] for f in self._flat() if f.errors and isinstance(f.errors, list)}

    @property
    def values(self) -> dict[str, object]:
        """Field name -> the value to show again: as cleaned when valid, as typed otherwise."""
        return {f.name: f.shown() if hasattr(f, "shown") else f.data for f in self._flat()}

    def refuse(self, name: str, message: str) -> None:
        """A message for a field found wrong by a check beyond the field's own (a clash, a rule of the workflow)."""
        field = next(f for f in self._flat() if f.name == name)
        field.errors = [*field.errors, message] if isinstance(field.errors, list) else [message]


class Required:
    """A value must be given: "<label> is required." and no further checks of the field."""

    field_flags = {"required": True}

    def __call__(self, form, field):
        if field.data in (None, ""):
            raise StopValidation(f"{field.label.text} is required.")


def _no_controls(form, field):
    """A pasted NUL or escape never belongs in a record (PostgreSQL cannot even store a NUL)."""
    if field.data and any((ord(c) < 32 and c not in "\n\r\t") or ord(c) == 127 for c in field.data):
        raise StopValidation(f"{field.label.text}: remove the control characters.")


class MaxLength:
    def __init__(self, limit: int):
        self.limit = limit

    def __call__(self, form, field):
        if field.data and len(field.data) > self.limit:
            raise StopValidation(f"{field.label.text}: at most {self.limit} characters.")


class TextField(StringField):
    """Trimmed, NFC-normalised text ("" when absent), at most ``max_len`` characters."""

    def __init__(self, label, validators=(), *, required: bool = False, max_len: int = 200, filters=(), **kw):
        checks = [Required()] if required else []
        super().__init__(label, [*checks, MaxLength(max_len), _no_controls, *validators],
                         filters=[_clean, *filters], **kw)

    def shown(self):
        return self.data or ""


class PhoneField(TextField):
    def __init__(self, label, **kw):
        super().__init__(label, [_problem(phone_problem)], max_len=30, **kw)


class EmailField(TextField):
    """An e-mail address, stored as email-validator normalises it."""

    def __init__(self, label, **kw):
        super().__init__(label, [_email], max_len=254, **kw)


class StateField(TextField):
    def __init__(self, label="State", **kw):
        super().__init__(label, [_state], max_len=2, filters=[_upper], **kw)


class PostalField(TextField):
    def __init__(self, label="ZIP code", **kw):
        super().__init__(label, [_postal], max_len=10, **kw)


class NpiField(TextField):
    """A National Provider Identifier; ``kind`` 1 (a person) or 2 (an organisation) when it matters."""

    def __init__(self, label="NPI", *, kind: int | None = None, **kw):
        super().__init__(label, [_npi(kind)], max_len=10, **kw)


class EinField(TextField):
    def __init__(self, label="EIN", **kw):
        super().__init__(label, [_bare(ein_problem)], max_len=10, **kw)


class TimezoneField(TextField):
    """An IANA time zone name, such as America/New_York."""

    def __init__(self, label="Time zone", **kw):
        super().__init__(label, [_timezone], required=True, max_len=64, **kw)


class NumberField(StringField):
    """A number typed as text, within ``lo``..``hi``; ``.number`` holds it once valid.

    NaN and infinities fall outside every range, so they are refused like any other bad value."""

    def __init__(self, label, lo: float, hi: float, *, required: bool = True, integer: bool = True, **kw):
        super().__init__(label, [*([Required()] if required else []), _no_controls], filters=[_clean], **kw)
        self.lo, self.hi, self.integer = lo, hi, integer
        self.number: int | float | None = None

    def post_validate(self, form, validation_stopped):
        if validation_stopped or not self.data:
            return
        try:
            value = int(self.data) if self.integer else float(self.data)
        except ValueError:
            self.errors.append(f"{self.label.text}: enter a {'whole ' if self.integer else ''}number.")
            return
        if not self.lo <= value <= self.hi:
            self.errors.append(f"{self.label.text} must be between {self.lo:g} and {self.hi:g}.")
            return
        self.number = value

    def shown(self):
        return self.data or ""


class CheckField(BooleanField):
    """A checkbox: ticked when posted as 1, on, yes or true."""

    false_values = (False, "false", "", "0", "off", "no")

    def shown(self):
        return bool(self.data)


class Ticked(CheckField):
    """A checkbox that must be ticked (a confirmation); ``message`` says what ticking it confirms."""

    def __init__(self, label, message: str, **kw):
        super().__init__(label, **kw)
        self.message = message

    def post_validate(self, form, validation_stopped):
        if not self.data:
            self.errors.append(self.message)


class SecretField(StringField):
    """A password or code as typed (not trimmed: spaces may belong to it), never shown back on the page."""

    def __init__(self, label, *, max_len: int = 1024, **kw):
        super().__init__(label, [MaxLength(max_len)], default="", **kw)

    def process_formdata(self, valuelist):
        self.data = valuelist[0] if valuelist and isinstance(valuelist[0], str) else ""

    def shown(self):
        return ""


class Posted(StringField):
    """A value the view or the rules check themselves (a version, a fingerprint, a next URL); "" when absent."""

    def __init__(self, label="", *, max_len: int = 2000, **kw):
        super().__init__(label, filters=[_clean], default="", **kw)
        self.max_len = max_len

    def process_formdata(self, valuelist):
        super().process_formdata(valuelist)
        self.data = (self.data or "")[:self.max_len]

    @property
    def posted(self) -> bool:
        return bool(self.raw_data)

    def number(self) -> int | None:
        """The value as a whole number that fits the database's integer ids, or None."""
        try:
            return db_int(self.data) if self.data and self.data.isascii() and self.data.isdigit() else None
        except ValueError:
            return None

    def shown(self):
        return self.data or ""


class IsoDateField(StringField):
    """A date typed as YYYY-MM-DD; ``.day`` holds it once valid (the text stays as typed)."""

    def __init__(self, label, validators=(), *, required: bool = True, not_future: bool = False, **kw):
        super().__init__(label, [*([Required()] if required else []), _no_controls, *validators], filters=[_clean], **kw)
        self.not_future = not_future
        self.day: date | None = None

    def post_validate(self, form, validation_stopped):
        if validation_stopped or not self.data:
            return
        try:
            self.day = parse_date(self.data, field=self.label.text, not_future=self.not_future)
        except ValueError as exc:
            self.errors.append(str(exc))

    def shown(self):
        return self.data or ""


class TimeOfDayField(StringField):
    """A wall-clock time typed as HH:MM; ``.at`` holds it once valid."""

    def __init__(self, label, **kw):
        super().__init__(label, filters=[_clean], **kw)
        self.at: time | None = None

    def post_validate(self, form, validation_stopped):
        try:
            self.at = time.fromisoformat(self.data or "")
        except ValueError:
            self.errors.append(f"{self.label.text}: enter a time such as 09:30.")

    def shown(self):
        return self.data or ""


class ChoiceField(StringField):
    """One of ``choices`` (value -> label, or just values); anything else: "Choose a <label>." (or ``message``).

    With ``required=False`` it may be left empty ("" when nothing was chosen). The templates draw
    their own <select>, so WTForms' SelectField (and its rendering) is not needed."""

    def __init__(self, label, choices, *, required: bool = True, message: str | None = None, **kw):
        super().__init__(label, filters=[_clean], **kw)
        self.allowed = choices if isinstance(choices, dict) else {c: c for c in choices}
        self.required, self.message = required, message

    def pre_validate(self, form):
        if (self.data or self.required) and self.data not in self.allowed:
            raise StopValidation(self.message or f"Choose a {self.label.text.lower()}.")

    def shown(self):
        return self.data or ""


class OptionalChoiceField(ChoiceField):
    """A ChoiceField that may be left empty ("" when nothing was chosen)."""

    def __init__(self, label, choices, **kw):
        super().__init__(label, choices, required=False, **kw)


def _problem(check):
    """A validator from one of core.validators' checks, which return a message or None."""
    def validate(form, field):
        if field.data and (problem := check(field.data)):
            raise ValidationError(f"{field.label.text}: {problem}")
    return validate


def _bare(check):
    """As _problem, for checks whose message already names the field ("An EIN is nine digits...")."""
    def validate(form, field):
        if field.data and (problem := check(field.data)):
            raise ValidationError(problem)
    return validate


def _email(form, field):
    if field.data:
        try:
            field.data = validate_email(field.data, check_deliverability=False).normalized
        except EmailNotValidError:
            raise ValidationError(f"{field.label.text}: enter an address such as name@example.com.") from None


def _upper(value):
    return value.upper() if isinstance(value, str) else value


def _npi(kind):
    def validate(form, field):
        if field.data and (problem := npi_problem(field.data, kind=kind)):
            raise ValidationError(problem)
    return validate


def _timezone(form, field):
    if field.data and field.data not in available_timezones():
        raise ValidationError("Choose a time zone from the list, such as America/New_York.")


def _state(form, field):
    if field.data and not (len(field.data) == 2 and field.data.isalpha()):
        raise ValidationError("Use the two-letter state code, such as OR.")


def _postal(form, field):
    digits = (field.data or "").replace("-", "")
    if field.data and not (digits.isdigit() and len(digits) in (5, 9)):
        raise ValidationError("Enter a ZIP code such as 97477 or 97477-1234.")


class PostedField(StringField):
    """A value the view or its rules check themselves (a token, an id, a version, a button);
    trimmed and NFC-normalised, ``default`` ("") when not posted."""

    def __init__(self, label="", validators=(), *, default="", filters=(), **kw):
        super().__init__(label, validators, filters=[_clean, *filters], default=default, **kw)

    @property
    def posted(self) -> bool:
        return bool(self.raw_data)

    def shown(self):
        return self.data or ""


class TickField(BooleanField):
    """A checkbox ticked only when posted as 1, on, yes or true: any other value is not a tick, which a
    signature or a consent's statement needs (CheckField counts any unknown value as ticked)."""

    def process_formdata(self, valuelist):
        self.data = bool(valuelist) and valuelist[0] in ("1", "on", "yes", "true")

    def shown(self):
        return bool(self.data)
