"""The settings pages' forms: the clinic's own details, providers, staff accounts, outside clinicians.

The clinic's details are what superbills and letters print, so they are checked as strictly as
those documents need them. Each form copies only its declared fields (``apply``).
"""
from __future__ import annotations

from wtforms.validators import ValidationError

from core.form_fields import (CheckField, ChoiceField, EinField, EmailField, GliaForm, NpiField, PhoneField, Posted,
                              PostalField, SecretField, StateField, TextField, TimezoneField)
from core.models import STAFF_ROLES, ClinicianKind
from core.rems.enrollment import id_problem as rems_id_problem

PLACES_OF_SERVICE = {"11": "11 Office", "02": "02 Telehealth (not in patient's home)", "10": "10 Telehealth in patient's home",
                     "22": "22 Outpatient hospital", "49": "49 Independent clinic"}
STAFF_ROLE_NAMES = [r.value for r in STAFF_ROLES]
CLINICIAN_KINDS = {k.value: k.value.replace("_", " ").capitalize() for k in ClinicianKind}


class _Copies(GliaForm):
    def apply(self, row, names) -> None:
        """Copy the named fields onto the row: nothing else is ever read from the post."""
        for name in names:
            setattr(row, name, self[name].data)


class ClinicForm(_Copies):
    name = TextField("Clinic name", required=True)
    address_line1 = TextField("Address", required=True)
    address_line2 = TextField("Address line 2")
    city = TextField("City", required=True, max_len=100)
    state = StateField(required=True)
    postal_code = PostalField()
    phone = PhoneField("Phone")
    fax = PhoneField("Fax")
    timezone = TimezoneField()
    ein = EinField("EIN")
    npi = NpiField("Organization NPI", kind=2)
    place_of_service = ChoiceField("Place of service", PLACES_OF_SERVICE)
    rems_setting_id = TextField("Spravato REMS setting ID", max_len=40)

    def validate_rems_setting_id(self, field):
        if problem := rems_id_problem(field.data, field.label.text):
            raise ValidationError(problem)


class ProviderForm(_Copies):
    first_name = TextField("First name", required=True, max_len=100)
    last_name = TextField("Last name", required=True, max_len=100)
    credentials = TextField("Credentials", max_len=40)
    npi = NpiField("NPI", kind=1, required=True)
    license_number = TextField("License number", max_len=40)
    license_state = StateField("License state")
    active = CheckField("Active")


class UserForm(GliaForm):
    """A new staff account with a temporary password (its strength is checked by core.auth)."""

    name = TextField("Name", required=True)
    email = EmailField("Email", required=True)
    role = ChoiceField("Role", STAFF_ROLE_NAMES)
    password = SecretField("Temporary password")


class UserUpdateForm(GliaForm):
    """A role change or (de)activation; a role left out of the post stays as it is."""

    role = Posted("Role", max_len=40)
    active = CheckField("Active")


class ClinicianForm(_Copies):
    kind = ChoiceField("Kind", CLINICIAN_KINDS)
    name = TextField("Name", required=True)
    credentials = TextField("Credentials", max_len=40)
    practice = TextField("Practice")
    npi = NpiField("NPI")
    phone = PhoneField("Phone")
    fax = PhoneField("Fax")
    email = EmailField("Email")
    address = TextField("Address", max_len=400)
