"""Planning and calendar forms (WTForms, through core.form_fields)."""
from __future__ import annotations

from datetime import time

from wtforms import FieldList, Form, FormField

from core.form_fields import CheckField, ChoiceField, GliaForm, IsoDateField, NumberField, TextField, TimeOfDayField
from core.models import Modality, Provider
from core.scheduling.calendar import WEEKDAYS
from core.scheduling.models import Chair
from core.scheduling.patterns import PATTERNS
from core.scheduling.planner import MAINTENANCE
from core.views.chart_forms import _ClinicRow

PATTERN_CHOICES = {**{k: p.label for k, p in PATTERNS.items()}, MAINTENANCE: "Maintenance: the next session"}
MAX_SESSIONS = 16


class _OptionalChair(_ClinicRow):
    """No chair is a valid answer (a session that needs none); any other value must be one of ours."""

    def __call__(self, form, field):
        field.row = None
        if field.data:
            super().__call__(form, field)


def _provider():
    return TextField("Provider", [_ClinicRow(Provider, "Choose a provider.", Provider.active)], max_len=20)


def _chair():
    return TextField("Chair", [_OptionalChair(Chair, "Choose one of the clinic's chairs.", Chair.active)], max_len=20)


class RowForm(Form):
    """One proposed session as the desk may have edited it."""

    day = IsoDateField("Date")
    at = TimeOfDayField("Time")


class CourseForm(GliaForm):
    """An induction series by pattern, or (pattern "maintenance") the next session after an interval."""

    modality = ChoiceField("Modality", [m.value for m in Modality])
    pattern = ChoiceField("Pattern", PATTERN_CHOICES)
    first_day = IsoDateField("First session", required=False)
    at = TimeOfDayField("Time")
    provider_id = _provider()
    chair_id = _chair()
    interval_weeks = NumberField("Weeks after the last session", 1, 12, required=False)
    rows = FieldList(FormField(RowForm), max_entries=MAX_SESSIONS)

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        pattern = self.pattern.data
        if pattern in PATTERNS and self.modality.data in {m.value for m in Modality} \
                and Modality(self.modality.data) not in PATTERNS[pattern].modalities:
            self.pattern.errors.append("This pattern is not one for the chosen modality.")
            ok = False
        if pattern in PATTERNS and not self.first_day.data:
            self.first_day.errors.append("First session is required.")
            ok = False
        if pattern == MAINTENANCE and self.interval_weeks.number is None and not self.interval_weeks.errors:
            self.interval_weeks.errors.append("Weeks after the last session is required (1 to 12).")
            ok = False
        return ok


class MoveForm(GliaForm):
    day = IsoDateField("Date")
    at = TimeOfDayField("Time")
    provider_id = _provider()
    chair_id = _chair()


class ChairForm(GliaForm):
    name = TextField("Chair or room name", required=True, max_len=60)


class ClosureForm(GliaForm):
    day = IsoDateField("Date")
    reason = TextField("Reason", required=True, max_len=120)


class HolidaysForm(GliaForm):
    closed_on_federal_holidays = CheckField("Closed on US federal holidays")


class DayHoursForm(Form):
    open = CheckField("Open")
    opens = TextField("Opens", max_len=5)
    closes = TextField("Closes", max_len=5)


class HoursForm(GliaForm):
    """The week's opening hours: one row per weekday (days[0] is Monday)."""

    days = FieldList(FormField(DayHoursForm), min_entries=7, max_entries=7)

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        self.hours = {}
        for weekday, entry in enumerate(self.days.entries):
            if not entry.open.data:
                continue
            try:
                opens, closes = time.fromisoformat(entry.opens.data or ""), time.fromisoformat(entry.closes.data or "")
            except ValueError:
                entry.opens.errors = [*entry.opens.errors, f"{WEEKDAYS[weekday]}: enter times such as 08:00 and 18:00."]
                ok = False
                continue
            if closes <= opens:
                entry.closes.errors = [*entry.closes.errors, f"{WEEKDAYS[weekday]}: closing must be after opening."]
                ok = False
                continue
            self.hours[weekday] = (opens, closes)
        return ok
