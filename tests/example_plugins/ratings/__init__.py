"""Visit ratings: an example third-party plugin that adds to every part of Glia without touching core."""
from __future__ import annotations

import click
from flask import url_for
from sqlmodel import func, select

from core.db import get_session
from core.hookspecs import hookimpl
from core.models import Patient, utcnow
from core.slots import Blocker, DocumentType, LetterSection, NavItem, Panel, PortalItem, Setting, Widget, render

__version__ = "1.2.0"
GLIA_CONTRACT = ">=1.0,<2"  # the contract range this plugin was written for (core.hookspecs)

# Every call the plugin receives, as (hook, clinic slug or detail): tests read this to prove
# which clinics a plugin was (or was never) called for.
CALLS: list[tuple[str, str]] = []


def _ratings(clinic, patient_id=None):
    from .models import Rating

    query = select(Rating).where(Rating.clinic_id == clinic.id)
    if patient_id is not None:
        query = query.where(Rating.patient_id == patient_id)
    return get_session().exec(query.order_by(Rating.created_at.desc(), Rating.id.desc())).all()


# -- startup ------------------------------------------------------------------------------

@hookimpl
def register_blueprints(app):
    from .views import bp

    app.register_blueprint(bp)


@hookimpl
def register_models():
    from .models import Rating

    return [Rating]


@hookimpl
def register_settings():
    return [Setting("low_score", "Pause treatment at or below", 1, help="A rating this low blocks the next session.")]


@hookimpl
def register_document_types():
    return [DocumentType("ratings_summary", "Ratings summary")]


@hookimpl
def register_commands(cli):
    @cli.group("ratings")
    def ratings_group():
        """Visit ratings."""

    @ratings_group.command("hello")
    def hello():
        """Prove the plugin's command was added."""
        click.echo("ratings plugin says hello")


@hookimpl
def seed_demo_data(session, clinic):
    from .models import Rating

    patients = session.exec(select(Patient).where(Patient.clinic_id == clinic.id).order_by(Patient.id).limit(3)).all()
    for score, patient in zip((5, 4, 5), patients):
        session.add(Rating(clinic_id=clinic.id, patient_id=patient.id, score=score, created_at=utcnow()))


# -- per request ----------------------------------------------------------------------------

@hookimpl
def nav_items(clinic, user):
    CALLS.append(("nav_items", clinic.slug))
    return [NavItem("Ratings", url_for("ratings.index"), order=50)]


@hookimpl
def dashboard_widgets(clinic, user):
    CALLS.append(("dashboard_widgets", clinic.slug))
    from .models import Rating

    count = get_session().exec(select(func.count()).select_from(Rating).where(Rating.clinic_id == clinic.id)).one()
    return [Widget("Visit ratings", render("ratings/widget.html", count=count), order=90)]


@hookimpl
def patient_chart_panels(clinic, patient, user):
    CALLS.append(("patient_chart_panels", clinic.slug))
    html = render("ratings/panel.html", patient=patient, ratings=_ratings(clinic, patient.id))
    return [Panel("Visit ratings", html, order=80)]


@hookimpl
def session_panels(clinic, patient, treatment, user):
    CALLS.append(("session_panels", clinic.slug))
    ratings = _ratings(clinic, patient.id)
    html = render("ratings/session.html", last=ratings[-1] if ratings else None)
    return [Panel("Last visit rating", html, order=80)]


@hookimpl
def portal_items(clinic, patient):
    CALLS.append(("portal_items", clinic.slug))
    return [PortalItem("Your visit ratings", url_for("ratings.mine"), kind="task", detail="See how you rated your visits")]


@hookimpl
def treatment_blockers(clinic, patient, treatment):
    from core.plugin_state import settings_for

    low = settings_for(get_session(), clinic, "ratings")["low_score"]
    latest = _ratings(clinic, patient.id)[:1]
    if latest and latest[0].score <= low:
        return [Blocker("The patient's last visit rating was very low; talk with them first.",
                        link=url_for("ratings.index"))]
    return []


@hookimpl
def letter_sections(clinic, patient, recipient):
    ratings = _ratings(clinic, patient.id)
    if not ratings:
        return []
    return [LetterSection("Visit ratings", render("ratings/letter.html", ratings=ratings), order=70)]


@hookimpl
def superbill_extra_fields(clinic, patient, superbill):
    return {"Visit ratings on file": str(len(_ratings(clinic, patient.id)))}


@hookimpl
def patient_documents(clinic, patient):
    from core.documents import DocumentRef

    rows = _ratings(clinic, patient.id)
    return [DocumentRef("Visit ratings", "ratings_summary", rows[0].created_at, "/ratings/",
                        content_type="text/html")] if rows else []


# -- events ---------------------------------------------------------------------------------

@hookimpl
def treatment_completed(clinic, treatment):
    CALLS.append(("treatment_completed", f"{clinic.slug}:{treatment.id}"))


@hookimpl
def patient_created(clinic, patient):
    CALLS.append(("patient_created", f"{clinic.slug}:{patient.id}"))


@hookimpl
def document_issued(clinic, document):
    CALLS.append(("document_issued", f"{clinic.slug}:{document}"))
