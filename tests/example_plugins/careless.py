"""A careless plugin: builds its html with f-strings, links to javascript: and fails in an event.

Glia must show its html as inert text (escaped, never a script element), drop its unsafe link,
and log its failed event with its name and traceback but without the patient data in the error.
"""
from __future__ import annotations

from core.hookspecs import hookimpl
from core.slots import LetterSection, NavItem, Panel, Widget

PAYLOAD = "<script>alert(1)</script>"
GLIA_CONTRACT = ">=1.0,<2"


class CarelessError(RuntimeError):
    pass


@hookimpl
def nav_items(clinic, user):
    return [NavItem("Careless", "javascript:alert(1)")]


@hookimpl
def dashboard_widgets(clinic, user):
    return [Widget("Careless widget", f"<p>{PAYLOAD}</p>")]


@hookimpl
def patient_chart_panels(clinic, patient, user):
    return [Panel("Careless panel", f"<p>{PAYLOAD}</p>")]


@hookimpl
def session_panels(clinic, patient, treatment, user):
    return [Panel("Careless session panel", f"<p>{PAYLOAD}</p>")]


@hookimpl
def letter_sections(clinic, patient, recipient):
    return [LetterSection("Careless section", f"<p>{PAYLOAD}</p>")]


@hookimpl
def patient_created(clinic, patient):
    raise CarelessError(f"could not file {patient.legal_name}, born {patient.dob}")
