"""The consent pages' forms, on WTForms (core.form_fields): each reads only the fields it declares.

A form's ``messages`` holds what the page shows beside each field; messages about a group of
inputs (the statements to tick, the drawn signature, the modalities) carry the group's name.
Checks that need the record (the patient's legal name, the template's version, the screening
history) are made by the views and the consent rules with what these forms carry.
"""
from __future__ import annotations

import base64
import re

from wtforms.validators import StopValidation

from core.form_fields import GliaForm, PostedField, TickField
from plugins.consent.views.base import control_characters

MAX_STATEMENT = 2000
TOKEN = re.compile(r"^[0-9a-f]{32}$")
PNG_PREFIX = "data:image/png;base64,"
MAX_SIGNATURE_BYTES = 200_000
UNREADABLE_SIGNATURE = "The drawn signature could not be read. Clear it and sign again, or leave it empty."


class ConsentForm(GliaForm):
    """A form whose messages may also name a group of inputs (``problems``)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.problems: dict[str, str] = {}

    @property
    def messages(self) -> dict[str, str]:
        return {**super().messages, **self.problems}

    @property
    def ok(self) -> bool:
        return not self.messages


class StatementField(PostedField):
    """A clinician's written reason: long enough to mean something, plain text, at most 2000 characters."""

    def __init__(self, what: str, *, min_len: int, **kw):
        super().__init__(what.capitalize(), **kw)
        self.what, self.min_len = what, min_len

    def pre_validate(self, form):
        value = self.data or ""
        if len(value) > MAX_STATEMENT:
            raise StopValidation(f"{self.label.text}: at most {MAX_STATEMENT} characters.")
        if len(value) < self.min_len:
            raise StopValidation(f"Write {self.what} (at least {self.min_len} characters).")
        if control_characters(value):
            raise StopValidation("Remove the control characters from the text (they may come from a paste).")


class _Confirmed:
    """The box a clinician ticks to sign; unticked, ``message`` says what signing confirms."""

    def __init__(self, message: str):
        self.message = message

    def __call__(self, form, field):
        if not field.data:
            raise StopValidation(self.message)


# -- the clinician's signed decisions ------------------------------------------------------------

class AttestForm(ConsentForm):
    attest = TickField("I attest", [_Confirmed("Tick the box to confirm that you explained this consent and "
                                               "answered the patient's questions, and sign.")])


class AcknowledgeForm(ConsentForm):
    """``vital_id`` names the blood pressure reading the clinician saw (empty for a screening item)."""
    vital_id = PostedField()
    rationale = StatementField("the clinical rationale for proceeding", min_len=15)
    attest = TickField("I take responsibility", [_Confirmed(
        "Confirm that you have weighed this risk and take responsibility for proceeding.")])


class ReviewForm(ConsentForm):
    """``yes_screening_id`` and ``no_screening_id`` name the pair of answers the clinician reviewed."""
    yes_screening_id = PostedField()
    no_screening_id = PostedField()
    reason = StatementField("the reason the earlier answer no longer applies", min_len=10)
    attest = TickField("I reviewed this change", [_Confirmed(
        "Tick the box to confirm that you reviewed the change, and sign.")])


class RevokeForm(ConsentForm):
    reason = PostedField("Reason for the withdrawal")

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        if not self.reason.data or len(self.reason.data) > 500:
            self.reason.errors = ["Give a reason for the withdrawal (up to 500 characters); nothing was changed."]
        return ok and not self.reason.errors


# -- signing -----------------------------------------------------------------------------------

def signature_png(raw: str) -> tuple[bytes | None, str | None]:
    """The drawn signature as PNG bytes, or a message; empty means "typed name only"."""
    if not raw:
        return None, None
    if not raw.startswith(PNG_PREFIX) or len(raw) > MAX_SIGNATURE_BYTES * 4 // 3 + 64:
        return None, UNREADABLE_SIGNATURE
    try:
        data = base64.b64decode(raw[len(PNG_PREFIX):], validate=True)
    except ValueError:
        return None, UNREADABLE_SIGNATURE
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None, UNREADABLE_SIGNATURE
    return data, None


class _SignBase(ConsentForm):
    """Signing a consent: who signs, with what authority, each statement ticked and, optionally, a
    drawn signature. ``same_name`` compares a typed name with the patient's legal name."""
    template_id = PostedField()
    submission_token = PostedField()
    signer_role = PostedField("Who is signing", default="patient")
    signer_name = PostedField("Full name")
    authority = PostedField("Representative's authority")
    signature_png = PostedField("Signature")
    verbal = TickField("Verbal consent witnessed")

    def __init__(self, *args, on_tablet: bool, legal_name: str, same_name, statements: int, **kw):
        super().__init__(*args, **kw)
        self.on_tablet, self.legal_name, self.same_name, self.statements = on_tablet, legal_name, same_name, statements
        self.png: bytes | None = None

    @property
    def token_ok(self) -> bool:
        return bool(TOKEN.match(self.submission_token.data or ""))

    @property
    def role(self) -> str:
        return self.signer_role.data or "patient"

    @property
    def witnessed_verbal(self) -> bool:
        return self.on_tablet and self.verbal.data

    @property
    def ticked(self) -> list[bool]:
        return [self[f"ack_{i}"].data for i in range(self.statements)]

    @property
    def shown(self) -> dict:
        """What the page shows again after a refusal."""
        return {"signer_name": self.signer_name.data, "signer_role": self.signer_role.data,
                "authority": self.authority.data, "verbal": self.witnessed_verbal, "ticked": self.ticked}

    def validate(self, extra_validators=None):
        super().validate(extra_validators)
        role, name, authority = self.role, self.signer_name.data, self.authority.data
        if role not in ("patient", "representative"):
            self.signer_role.errors = ["Choose who is signing."]
        if not name:
            self.signer_name.errors = ["Type your full name to sign."]
        elif len(name) > 200:
            self.signer_name.errors = ["Use at most 200 characters."]
        elif role == "patient" and not self.same_name(name, self.legal_name):
            self.signer_name.errors = ["Type the patient's full legal name as it appears on the record."]
        if role == "representative" and not authority:
            self.authority.errors = ["Say what authority the representative has (for example: legal guardian, "
                                     "health care power of attorney)."]
        elif len(authority) > 200:
            self.authority.errors = ["Use at most 200 characters."]
        if not all(self.ticked):
            self.problems["acks"] = "Tick every box to confirm you have read and agree to each statement."
        self.png, problem = signature_png(self.signature_png.data)
        if problem:
            self.problems["signature"] = problem
        return self.ok


def sign_form(template, **kw) -> _SignBase:
    """The signing form for a template: one box per statement it asks the signer to tick."""
    boxes = {f"ack_{i}": TickField(text) for i, text in enumerate(template.acknowledgements)}
    return type("SignForm", (_SignBase,), boxes)(statements=len(template.acknowledgements), **kw)


# -- screening ---------------------------------------------------------------------------------

class _ScreeningBase(ConsentForm):
    answered_by = PostedField("Answered by", default="patient")

    def __init__(self, *args, codes, on_portal: bool, **kw):
        super().__init__(*args, **kw)
        self.codes, self.on_portal = list(codes), on_portal

    @property
    def answers(self) -> dict[str, str]:
        """Question code -> "yes", "no" or what was posted instead."""
        return {code: self[f"item_{code}"].data for code in self.codes}

    @property
    def who(self) -> str:
        return "patient" if self.on_portal else self.answered_by.data

    @property
    def shown(self) -> dict:
        return {**self.answers, "answered_by": self.who}

    def validate(self, extra_validators=None):
        super().validate(extra_validators)
        for code, answer in self.answers.items():
            if answer not in ("yes", "no"):
                self.problems[code] = "Answer yes or no."
        if self.who not in ("patient", "staff"):
            self.answered_by.errors = ["Say who answered."]
        return self.ok


def screening_form(items, **kw) -> _ScreeningBase:
    """The screening form for the clinic's active questions: one yes/no answer per question."""
    fields = {f"item_{i.code}": PostedField(i.label) for i in items}
    return type("ScreeningForm", (_ScreeningBase,), fields)(codes=[i.code for i in items], **kw)


# -- the manager's editors -----------------------------------------------------------------------

def _lines(value):
    return value.replace("\r\n", "\n") if isinstance(value, str) else value


class TemplateForm(ConsentForm):
    """A new version of a consent's text; ``base_version`` is the version the manager started from."""
    base_version = PostedField()
    title = PostedField("Title", filters=[_lines])
    body = PostedField("Consent text", filters=[_lines])
    acknowledgements = PostedField("Statements to tick", filters=[_lines])
    change_note = PostedField("Change note", filters=[_lines])

    @property
    def statements(self) -> list[str]:
        return [line.strip() for line in self.acknowledgements.data.split("\n") if line.strip()]

    @property
    def shown(self) -> dict:
        return {k: self[k].data for k in ("title", "body", "acknowledgements", "change_note")}

    def validate(self, extra_validators=None):
        super().validate(extra_validators)
        acks = self.statements
        if not 3 <= len(self.title.data) <= 200:
            self.title.errors = ["Give a title of 3 to 200 characters."]
        if not 20 <= len(self.body.data) <= 50_000:
            self.body.errors = ["The consent text must be between 20 and 50,000 characters."]
        if not acks or len(acks) > 20 or any(len(a) > 500 for a in acks):
            self.acknowledgements.errors = ["Give 1 to 20 statements to tick, one per line, each up to 500 characters."]
        if len(self.change_note.data) > 300:
            self.change_note.errors = ["Use at most 300 characters."]
        return self.ok


class _QuestionBase(ConsentForm):
    """A screening question: its label, severity, the modalities it applies to and whether it is asked."""
    label = PostedField("Question")
    severity = PostedField("Severity")
    active = TickField("Asked in new screenings")

    def __init__(self, *args, modalities, **kw):
        super().__init__(*args, **kw)
        self.modalities = list(modalities)

    @property
    def item_values(self) -> dict:
        """The question's columns as posted (only these are ever set on the row)."""
        return {"label": self.label.data, "severity": self.severity.data,
                "modalities": [m for m in self.modalities if self[f"modality_{m}"].data], "active": self.active.data}

    def validate(self, extra_validators=None):
        super().validate(extra_validators)
        if not 3 <= len(self.label.data) <= 300:
            self.label.errors = ["Give the question a label of 3 to 300 characters."]
        if self.severity.data not in ("absolute", "relative"):
            self.severity.errors = ["Choose absolute or relative."]
        if not self.item_values["modalities"]:
            self.problems["modalities"] = "Choose at least one modality it applies to."
        return self.ok


def question_form(modalities) -> _QuestionBase:
    boxes = {f"modality_{m}": TickField(str(m)) for m in modalities}
    return type("QuestionForm", (_QuestionBase,), boxes)(modalities=modalities)


class _SettingsBase(ConsentForm):
    """Which consents each modality requires, and the numbers (validity, BP threshold) within limits."""

    def __init__(self, *args, modalities, kinds, limits: dict, **kw):
        super().__init__(*args, **kw)
        self.modalities, self.kinds, self.limits = list(modalities), list(kinds), limits

    @property
    def required(self) -> dict[str, list[str]]:
        return {f"required_{m}": [k for k in self.kinds if self[f"required_{m}_{k}"].data] for m in self.modalities}

    def numbers(self) -> dict[str, int | str]:
        """Each limit's whole number, or the text as typed when it is not one within its range."""
        out = {}
        for key, (low, high) in self.limits.items():
            raw = self[key].data
            ok = raw.isascii() and raw.isdigit() and low <= int(raw) <= high
            out[key] = int(raw) if ok else raw
        return out

    def validate(self, extra_validators=None):
        super().validate(extra_validators)
        for key, (low, high) in self.limits.items():
            if isinstance(self.numbers()[key], str):
                self[key].errors = [f"Enter a whole number from {low} to {high}."]
        return self.ok


def settings_form(modalities, kinds, limits: dict) -> _SettingsBase:
    fields: dict = {f"required_{m}_{k}": TickField(k) for m in modalities for k in kinds}
    fields.update({key: PostedField(key) for key in limits})
    return type("ConsentSettingsForm", (_SettingsBase,), fields)(modalities=modalities, kinds=kinds, limits=limits)
