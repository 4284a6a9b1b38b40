"""The signing form of the outcome report (WTForms, through core.form_fields)."""
from __future__ import annotations

from core.form_fields import ChoiceField, GliaForm, TextField
from core.outcomes.report import PURPOSES


class SignForm(GliaForm):
    purpose = ChoiceField("Purpose", PURPOSES)
    statement = TextField("Clinician's statement", max_len=2000)
