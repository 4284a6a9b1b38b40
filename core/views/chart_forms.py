"""The chart's small forms (a medication, a care-team member, a session booking), on WTForms."""
from __future__ import annotations

from flask import g
from sqlmodel import select
from wtforms.validators import ValidationError

from core.db import get_session
from core.form_fields import ChoiceField, GliaForm, IsoDateField, TextField, TimeOfDayField
from core.models import ClinicianKind, Modality, OutsideClinician, Provider, Sensitivity

DRUG_CLASSES = {"ssri": "SSRI", "snri": "SNRI", "ndri": "NDRI (bupropion)", "tca": "Tricyclic", "maoi": "MAOI",
                "sari": "SARI (trazodone)", "nassa": "NaSSA (mirtazapine)", "benzodiazepine": "Benzodiazepine",
                "sedative_hypnotic": "Sedative hypnotic", "anticonvulsant": "Anticonvulsant (e.g. lamotrigine)",
                "stimulant": "Psychostimulant", "opioid": "Opioid", "opioid_antagonist": "Opioid antagonist",
                "antipsychotic": "Antipsychotic", "lithium": "Lithium", "antihypertensive": "Antihypertensive",
                "other": "Other"}


class MedicationForm(GliaForm):
    med_name = TextField("Medication", required=True, max_len=120)
    drug_class = ChoiceField("Drug class", DRUG_CLASSES)
    med_dose = TextField("Dose", max_len=60)
    med_frequency = TextField("Frequency", max_len=60)
    prescriber = TextField("Prescriber", max_len=200)
    start_date = IsoDateField("Start date", required=False, not_future=True)
    sensitivity = ChoiceField("Sensitivity", [x.value for x in Sensitivity])


class _ClinicRow:
    """Validates an id field against the clinic's own rows: another clinic's id is as good as none."""

    def __init__(self, model, message: str, *extra):
        self.model, self.message, self.extra = model, message, extra

    def __call__(self, form, field):
        try:
            wanted = int(field.data or "")
        except ValueError:
            wanted = -1
        field.row = get_session().exec(select(self.model).where(
            self.model.id == wanted, self.model.clinic_id == g.clinic.id, *self.extra)).first()
        if field.row is None:
            raise ValidationError(self.message)


class CareTeamForm(GliaForm):
    clinician_id = TextField("Outside clinician", [_ClinicRow(
        OutsideClinician, "Choose an outside clinician (add new ones under Settings).")], max_len=20)
    role = ChoiceField("Role", [k.value for k in ClinicianKind])
    psychotherapy_modality = TextField("Psychotherapy modality", max_len=100)
    psychotherapy_frequency = TextField("Frequency", max_len=60)
    since = IsoDateField("Since", required=False, not_future=True)


class ScheduleForm(GliaForm):
    date = IsoDateField("Date")
    time = TimeOfDayField("Time")
    modality = ChoiceField("Modality", [m.value for m in Modality])
    provider_id = TextField("Provider", [_ClinicRow(Provider, "Choose a provider.", Provider.active)], max_len=20)
