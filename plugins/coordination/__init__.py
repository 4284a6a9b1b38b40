"""Care-coordination letters to outside psychiatrists, therapists and primary care."""
from __future__ import annotations

from flask import render_template, url_for
from markupsafe import Markup

from core.hookspecs import hookimpl
from core.slots import DocumentType, NavItem, Panel, Setting, Widget

GLIA_CONTRACT = ">=1.0,<2"
CLINICAL_ROLES = ("admin", "manager", "clinician")


def _clinical(user) -> bool:
    return user is not None and user.role.value in CLINICAL_ROLES


@hookimpl
def register_blueprints(app):
    from plugins.coordination.views import bp

    app.register_blueprint(bp)


@hookimpl
def register_models():
    from plugins.coordination import models

    return [models.CoordinationLetter, models.CoordinationDocument, models.CoordinationDisclosure,
            models.CoordinationPermission, models.CoordinationDue]


@hookimpl
def register_settings():
    return [
        Setting("require_patient_permission", "Require the patient's permission per recipient before sending", False,
                help="When on, a letter can only be marked as sent to a recipient the patient has agreed to "
                     "(a permission on file, not expired or revoked)."),
        Setting("induction_sessions", "Sessions in an induction series", 6,
                help="After this many completed ketamine sessions a progress letter to the psychiatrist becomes due."),
        Setting("esketamine_induction_sessions", "Sessions in an esketamine induction series", 8,
                help="The Spravato label's induction: twice weekly in weeks 1-4."),
        Setting("letter_overrides", "The clinic's own wording per letter kind", {},
                help="Opening, requests and closing text per letter kind, over the shipped defaults."),
    ]


@hookimpl
def register_document_types():
    return [DocumentType("coordination_letter", "Care-coordination letter")]


@hookimpl
def nav_items(clinic, user):
    return [NavItem("Letters", url_for("coordination.index"), order=40, roles=CLINICAL_ROLES)]


@hookimpl
def dashboard_widgets(clinic, user):
    if not _clinical(user):
        return []
    from core.db import get_session
    from plugins.coordination import letters

    due = letters.due_letters(get_session(), clinic)
    return [Widget("Letters due", Markup(render_template("coordination/widget.html", due=due)), order=30)]


@hookimpl
def patient_chart_panels(clinic, patient, user):
    if not _clinical(user):
        return []
    from plugins.coordination import views

    return [Panel("Care-coordination letters", views.panel_html(clinic, patient), order=60)]


@hookimpl
def treatment_completed(clinic, treatment):
    from core.db import get_session
    from core.plugin_state import settings_for
    from plugins.coordination import letters

    session = get_session()
    letters.note_treatment_completed(session, clinic, treatment.patient_id, settings_for(session, clinic, "coordination"))


@hookimpl
def seed_demo_data(session, clinic):
    from plugins.coordination import demo

    demo.seed(session, clinic)


@hookimpl
def patient_documents(clinic, patient):
    from core.db import get_session
    from plugins.coordination import letters

    return letters.exportable_documents(get_session(), clinic, patient)
