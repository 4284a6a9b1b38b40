"""The patient's demographics form (add and edit), on WTForms."""
from __future__ import annotations

from flask import g
from sqlmodel import select
from wtforms.validators import ValidationError

from core.db import get_session
from core.form_fields import ChoiceField, EmailField, GliaForm, IsoDateField, PhoneField, PostalField, StateField, TextField
from core.vocab import SEXES
from core.models import Patient


class PatientForm(GliaForm):
    mrn = TextField("MRN", required=True, max_len=20)
    legal_first_name = TextField("Legal first name", required=True, max_len=100)
    legal_last_name = TextField("Legal last name", required=True, max_len=100)
    preferred_name = TextField("Preferred name", max_len=100)
    dob = IsoDateField("Date of birth", not_future=True)
    sex = ChoiceField("Sex", SEXES)
    phone = PhoneField("Phone")
    email = EmailField("Email")
    address_line1 = TextField("Address")
    address_line2 = TextField("Address line 2")
    city = TextField("City", max_len=100)
    state = StateField()
    postal_code = PostalField()
    member_id = TextField("Insurance member ID", max_len=40)
    escort_name = TextField("Escort name")
    escort_phone = PhoneField("Escort phone")
    emergency_contact_name = TextField("Emergency contact")
    emergency_contact_phone = PhoneField("Emergency contact phone")

    def __init__(self, *args, patient: Patient | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.patient = patient

    def validate_mrn(self, field):
        """Unique within the clinic (the database refuses a duplicate too; this says so kindly)."""
        clash = get_session().exec(select(Patient.id).where(
            Patient.clinic_id == g.clinic.id, Patient.mrn == field.data,
            Patient.id != (self.patient.id if self.patient else -1))).first()
        if clash is not None:
            raise ValidationError("Another patient in this clinic already has that MRN.")

    def apply(self, patient: Patient) -> None:
        """Copy the declared fields onto the patient: nothing else is ever read from the post."""
        for field in self:
            setattr(patient, field.name, field.day if field.name == "dob" else field.data)
