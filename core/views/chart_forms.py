"""The chart's small forms (the search, a score, a diagnosis, a medication, a care-team member, a
session booking), on WTForms."""
from __future__ import annotations

from flask import g
from sqlmodel import select
from wtforms.validators import ValidationError

from core.db import get_session
from core import scoring
from core.form_fields import CheckField, ChoiceField, GliaForm, IsoDateField, Posted, TextField, TimeOfDayField
from core.models import ClinicianKind, Instrument, Modality, OutsideClinician, Provider, Sensitivity
from core.validators import db_int

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
            wanted = db_int(field.data or "")  # beyond a 32-bit column: PostgreSQL would answer a 500
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


class SearchForm(GliaForm):
    """The patient search: terms (PHI, so posted, never in a URL) and the page of results."""

    q = Posted("Search by name, date of birth (YYYY-MM-DD or MM/DD/YYYY) or MRN", max_len=100)
    page = Posted("Page", max_len=12)


class ScoreForm(GliaForm):
    """A PHQ-9 or GAD-7: the instrument and its answers, each 0 to 3 (scoring checks the range)."""

    instrument = Posted("Questionnaire", max_len=10)

    @property
    def chosen(self) -> Instrument | None:
        return Instrument._value2member_map_.get(self.instrument.data)

    def answers(self, instrument: Instrument) -> list[int] | None:
        """The instrument's answers as numbers, or None when one is missing or not a number."""
        raw = [self[f"item{i}"].data for i in range(1, scoring.ITEMS[instrument] + 1)]
        return [int(v) for v in raw] if all(v.isascii() and v.isdigit() and len(v) < 3 for v in raw) else None


for _i in range(1, max(scoring.ITEMS.values()) + 1):
    setattr(ScoreForm, f"item{_i}", Posted(f"Question {_i}", max_len=4))
del _i


class DiagnosisForm(GliaForm):
    code = Posted("ICD-10 code", max_len=10)
    is_primary = CheckField("Primary diagnosis")
