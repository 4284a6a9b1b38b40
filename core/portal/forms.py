"""The portal's forms (WTForms, through core.form_fields): a change request, a questionnaire, the
clinic's questionnaire rule, and staff marking a request handled."""
from __future__ import annotations

from functools import cache

from wtforms import StringField
from wtforms.validators import StopValidation

from core.form_fields import ChoiceField, GliaForm, NumberField, OptionalChoiceField, TextField, _clean
from core.models import Instrument
from core.questionnaires import DEFINITIONS, INSTRUMENT_CHOICES, RULE_CHOICES

KINDS = {"move": "Move it to another day or time", "cancel": "Cancel it"}
KIND_SHORT = {"move": "Move", "cancel": "Cancel"}
REASONS = {"conflict": "Work, school or family conflict", "escort": "My escort cannot come",
           "unwell": "I am unwell", "travel": "Travel or transport", "cost": "Cost or insurance",
           "other": "Another reason"}
NOTE_MAX = 300


class ChangeRequestForm(GliaForm):
    kind = ChoiceField("What would you like?", KINDS)
    reason = ChoiceField("Reason", REASONS)
    note = TextField("Anything the clinic should know (optional)", max_len=NOTE_MAX)

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        if self.kind.errors:
            self.kind.errors[:] = ["Choose whether to move or cancel the session."]
        if self.reason.errors:
            self.reason.errors[:] = ["Choose a reason."]
        return ok


class AnswerField(StringField):
    """One item, answered 0-3; an unanswered item is named by its number so the patient can find it."""

    def __init__(self, label, number: int, **kw):
        super().__init__(label, filters=[_clean], **kw)
        self.number = number

    def pre_validate(self, form):
        if self.data not in ("0", "1", "2", "3"):
            raise StopValidation(f"Please answer question {self.number}.")


class _Questionnaire(GliaForm):
    instrument: Instrument

    def answers(self) -> list[int]:
        return [int(f.data) for f in self if isinstance(f, AnswerField)]


@cache
def questionnaire_form(instrument: Instrument) -> type[_Questionnaire]:
    """The form for one instrument: fields item1..itemN labelled with the published wording."""
    items = DEFINITIONS[instrument]["items"]
    fields = {f"item{n}": AnswerField(text, n) for n, text in enumerate(items, 1)}
    return type(f"{instrument.name.upper()}Form", (_Questionnaire,), {"instrument": instrument, **fields})


class PolicyForm(GliaForm):
    """When questionnaires are due (Settings, Questionnaires)."""

    instruments = ChoiceField("Questionnaires", INSTRUMENT_CHOICES)
    rule = ChoiceField("When", RULE_CHOICES)
    every_n = NumberField("N (sessions between questionnaires)", 2, 12, required=False)
    days_before = NumberField("Due from this many days before the session", 0, 14)

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        if self.rule.data == "first_then_every" and self.every_n.number is None and not self.every_n.errors:
            self.every_n.errors.append("N is required when questionnaires come every N sessions (2 to 12).")
            ok = False
        return ok


class HandledForm(GliaForm):
    back = OptionalChoiceField("Back to", ["chart", "dashboard"])
