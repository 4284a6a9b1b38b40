"""The session steps' forms (check-in, baseline vitals, dosing, discharge, cancel and no-show).

Each carries the session's ``version`` as the page drew it; core.workflow compares it, so a
stale or repeated form is refused with 409 before anything is read further. Vitals are one
small form embedded under a prefix (``baseline_systolic``, ``post_spo2``...), checked the same
way at every step. Side-effect answers are declared per request from the known effects.
"""
from __future__ import annotations

from wtforms import Form, FormField

from core.form_fields import (ChoiceField, GliaForm, NumberField, OptionalChoiceField, Posted, PhoneField, TextField,
                              Ticked, TimeOfDayField)
from core.vocab import SEVERITIES, SIDE_EFFECTS


class VitalsForm(Form):
    """Blood pressure, pulse and SpO2, checked for plausibility; ``reading`` holds them once valid."""

    optional = False  # a reading that may be left out entirely (check-in: it may come before the start)
    systolic = NumberField("Systolic pressure", 50, 260)
    diastolic = NumberField("Diastolic pressure", 20, 180)
    heart_rate = NumberField("Heart rate", 20, 250, required=False)
    spo2 = NumberField("SpO2", 50, 100, required=False)

    @property
    def given(self) -> bool:
        return any(f.data for f in self)

    def validate(self, extra_validators=None):
        self.reading = None
        if self.optional and not self.given:
            return True
        ok = super().validate(extra_validators)
        sys_, dia = self.systolic.number, self.diastolic.number
        if sys_ is not None and dia is not None and dia >= sys_:
            self.diastolic.errors.append("Diastolic pressure must be below systolic.")
            return False
        if ok:
            self.reading = {"systolic": sys_, "diastolic": dia, "heart_rate": self.heart_rate.number,
                            "spo2": self.spo2.number}
        return ok


class OptionalVitalsForm(VitalsForm):
    optional = True


def _vitals(form=VitalsForm):
    return FormField(form, separator="_")


class StepForm(GliaForm):
    """A step with no fields of its own (start): only the version the page was drawn with."""

    version = Posted()


class CheckInForm(StepForm):
    escort_confirmed = Ticked("The escort is confirmed",
                              "Confirm that the escort is here or on call to take the patient home.")
    escort_name = TextField("Escort name", required=True)
    escort_phone = PhoneField("Escort phone")
    baseline = _vitals(OptionalVitalsForm)


class BaselineForm(StepForm):
    baseline = _vitals()


class OptionalTime(TimeOfDayField):
    """A wall-clock time that may be left empty (``at`` is then None)."""

    def post_validate(self, form, validation_stopped):
        if self.data:
            super().post_validate(form, validation_stopped)


class _MonitorForm(StepForm):
    dose_mg = NumberField("Dose (mg)", 0.1, 1000, integer=False)
    weight_kg = NumberField("Weight (kg)", 20, 400, integer=False, required=False)
    duration_minutes = NumberField("Dosing duration (minutes)", 1, 600, required=False)
    dosed_time = OptionalTime("Dosing began")
    lot_number = TextField("Kit lot number", max_len=40)
    override_reason = TextField("Override reason", max_len=1000)
    post = _vitals()

    def __init__(self, *args, lot_required: bool, **kw):
        super().__init__(*args, **kw)
        self.lot_required = lot_required

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        if self.lot_required and not self.lot_number.errors and not self.lot_number.data:
            self.lot_number.errors.append("Kit lot number is required.")
            ok = False
        return ok

    @property
    def effects(self) -> list[tuple[str, str]]:
        """The side effects reported, as (effect, severity)."""
        return [(key, self[f"effect_{key}"].data) for key in SIDE_EFFECTS if self[f"effect_{key}"].data]


MonitorForm = type("MonitorForm", (_MonitorForm,), {
    f"effect_{key}": OptionalChoiceField(text, SEVERITIES, message="Choose mild, moderate or severe.")
    for key, text in SIDE_EFFECTS.items()})


class _DischargeForm(StepForm):
    discharge = _vitals()
    released_to_escort = Ticked("Released to the escort",
                                "Confirm the patient leaves with their escort (no driving until tomorrow).")
    notes = TextField("Notes", max_len=4000)


def discharge_form(effect_ids, *, ready_asked: bool) -> GliaForm:
    """The discharge form: a resolution for each side effect recorded, and (esketamine) when the
    patient would have been ready to leave, for the REMS monitoring form."""
    fields: dict = {f"resolved_{i}": ChoiceField("Resolved", ("yes", "no"),
                                                 message="Say whether this side effect has resolved.")
                    for i in effect_ids}
    if ready_asked:
        fields["ready_minutes"] = NumberField("Ready to leave after", 0, 600)
    return type("DischargeForm", (_DischargeForm,), fields)()


class EndForm(StepForm):
    """Cancel or no-show: the first post asks (core.confirm), the one carrying confirm=yes acts."""

    confirm = Posted(max_len=10)

    @property
    def confirmed(self) -> bool:
        return self.confirm.data == "yes"
