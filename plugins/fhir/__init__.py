"""FHIR R4 export: a patient's record as one FHIR Bundle (JSON), downloaded from the chart.

The Bundle (type "collection", R4B models of ``fhir.resources``) holds an Organization for the
clinic, the Patient (MRN identifier under the clinic's own system URI), Conditions from the
ICD-10-CM diagnoses, MedicationStatements, PHQ-9 / GAD-7 total-score Observations (LOINC codes in
data/codes.json) and a DocumentReference per issued document other plugins report through
``patient_documents``. Medications marked 42 CFR Part 2 or psychotherapy note are left out, and
plugins report no document carrying them. Off until an admin switches it on for a clinic.
Built on the public contract only: core models, hooks and helpers.
"""
from __future__ import annotations

from flask import url_for

from core.hookspecs import hookimpl
from core.slots import Panel, render

GLIA_CONTRACT = ">=1.0,<2"
GLIA_DEFAULT_ENABLED = False
EXPORT_ROLES = ("admin", "manager", "clinician")


@hookimpl
def register_blueprints(app):
    from plugins.fhir.views import bp

    app.register_blueprint(bp)


@hookimpl
def patient_chart_panels(clinic, patient, user):
    """A link only: the chart's statement budget allows no queries here."""
    if user is None or user.role.value not in EXPORT_ROLES:
        return []
    return [Panel("FHIR export", render("fhir/panel.html",
                                        url=url_for("fhir.bundle", patient_id=patient.id)), order=90)]
