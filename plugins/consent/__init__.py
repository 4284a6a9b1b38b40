"""Versioned consents with e-signatures and contraindication screening that gates treatment."""
from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import url_for
from sqlmodel import select

from core.hookspecs import hookimpl
from core.models import Patient, SessionStatus
from core.slots import DocumentType, LetterSection, NavItem, Panel, PortalItem, Setting, Widget, render
from plugins.consent import gate, models, service, status

__version__ = "1.0"
GLIA_CONTRACT = ">=1.0,<2"

DEFAULT_REQUIRED = {
    "iv_ketamine": ["informed_ketamine", "treatment_day", "financial"],
    "im_ketamine": ["informed_ketamine_im", "treatment_day", "financial"],
    "sublingual": ["informed_ketamine_oral", "treatment_day", "financial"],
    "esketamine_nasal": ["informed_esketamine", "treatment_day", "financial"],
}


@hookimpl
def register_models():
    return models.MODELS


@hookimpl
def register_blueprints(app):
    from plugins.consent.views import bp

    app.register_blueprint(bp)


@hookimpl
def register_settings():
    from core.models import MODALITY_LABELS, Modality

    required = [Setting(f"required_{m.value}", f"Consents required for {MODALITY_LABELS[m]}", DEFAULT_REQUIRED[m.value],
                        choices=tuple(service.KINDS)) for m in Modality]
    return required + [
        Setting("validity_days", "A signed consent stays valid for (days)", 365),
        Setting("screening_validity_days", "A contraindication screening stays current for (days)", 365),
        Setting("bp_systolic_max", "Highest systolic blood pressure at check-in (mmHg)", 160,
                help="Above this, a clinician must acknowledge before treatment starts."),
        Setting("bp_diastolic_max", "Highest diastolic blood pressure at check-in (mmHg)", 100),
    ]


@hookimpl
def register_document_types():
    return [DocumentType("signed_consent", "Signed consent"),
            DocumentType("contraindication_acknowledgement", "Clinician acknowledgement of a contraindication"),
            DocumentType("contraindication_clearance", "Clinician review clearing a changed screening answer")]


@hookimpl
def treatment_blockers(clinic, patient, treatment):
    from core.db import get_session

    return gate.blockers_for(get_session(), clinic, [treatment]).get(treatment.id, [])


@hookimpl
def nav_items(clinic, user):
    return [NavItem("Consents", url_for("consent.templates"), order=400, roles=("admin", "manager"))]


@hookimpl
def patient_chart_panels(clinic, patient, user):
    from core.db import get_session

    session = get_session()
    st = status.status_for(session, clinic, [patient.id])[patient.id]
    modality = service.modality_of(session, clinic, patient.id)
    required = service.required_kinds(service.settings(session, clinic), modality) if modality else []
    html = render("consent/panel.html", patient=patient, st=st, required=required, modality=modality,
                           viewer=user, reviewer=user.role.value in service.REVIEWERS)
    return [Panel("Consents and screening", html, order=20)]


@hookimpl
def session_panels(clinic, patient, treatment, user):
    """The history of every screening item this patient ever answered "yes", where the clinician starts
    the session; answers are clinical information, so not for the front desk."""
    from core.db import get_session
    from core.views.patients import is_clinical

    if not is_clinical(user):
        return []
    st = status.status_for(get_session(), clinic, [patient.id])[patient.id]
    if not st.flagged and not st.history_error:
        return []
    html = render("consent/session_panel.html", patient=patient, treatment=treatment, st=st,
                           can_review=user.role.value in service.REVIEWERS)
    return [Panel("Screening history", html, order=15)]


@hookimpl
def dashboard_widgets(clinic, user):
    """Today's patients whose session may not start, with the first reason: batch queries only."""
    from core.db import get_session
    from core.schedule import todays_sessions

    session = get_session()
    found = [(t, patient) for t, patient, _provider in todays_sessions(session, clinic)
             if t.status in (SessionStatus.scheduled, SessionStatus.checked_in)]
    treatments = [t for t, _ in found]
    blocked = {tid: reasons for tid, reasons in gate.blockers_for(session, clinic, treatments).items() if reasons}
    rows = [(t, patient, blocked[t.id]) for t, patient in found if t.id in blocked]
    html = render("consent/widget.html", rows=rows, total=len(treatments),
                           clinical=user.role.value != "front_desk",
                           chart=lambda pid: service.link_to("patients.chart", patient_id=pid) or url_for("consent.patient", patient_id=pid))
    widgets = [Widget("Blocked today: consent and screening", html, order=15)]
    waiting = status.awaiting_attestation(session, clinic)
    if waiting or user.role.value in service.REVIEWERS:
        names = {p.id: p for p in session.exec(select(Patient).where(
            Patient.clinic_id == clinic.id, Patient.id.in_({r.patient_id for r in waiting})))} if waiting else {}
        widgets.append(Widget("Consents awaiting clinician attestation", render(
            "consent/attest_widget.html", rows=[(r, names[r.patient_id]) for r in waiting],
            can_attest=user.role.value in service.REVIEWERS), order=16))
    return widgets


@hookimpl
def portal_items(clinic, patient):
    from core.db import get_session

    session = get_session()
    st = status.status_for(session, clinic, [patient.id])[patient.id]
    modality = service.modality_of(session, clinic, patient.id)
    items = []
    for kind in (service.required_kinds(service.settings(session, clinic), modality) if modality else []):
        state = st.consents.get(kind)
        if state is not None and state.status not in ("valid", "awaiting"):
            items.append(PortalItem(f"Please read and sign: {state.title}", url_for("consent.portal_sign", kind=kind),
                                    kind="task", detail="Needed before your next treatment", order=10))
    if st.screening is None or st.screening_stale:
        items.append(PortalItem("Please answer the health screening questions", url_for("consent.portal_screening"),
                                kind="task", detail="Needed before your next treatment", order=11))
    for state in st.consents.values():
        if state.record is not None and status.complete(state.record):
            items.append(PortalItem(f"Signed: {state.title}",
                                    url_for("consent.portal_pdf", consent_id=state.record.id), kind="document",
                                    detail=f"Version {state.record.version}, signed "
                                           f"{state.record.signed_at.astimezone(ZoneInfo(clinic.timezone)):%b %d, %Y}",
                                    order=60))
    return items


@hookimpl
def letter_sections(clinic, patient, recipient):
    from core.db import get_session

    session = get_session()
    st = status.status_for(session, clinic, [patient.id])[patient.id]
    html = render("consent/letter_section.html", st=st, zone=ZoneInfo(clinic.timezone))
    return [LetterSection("Consent and safety screening", html, order=50)]


@hookimpl
def seed_demo_data(session, clinic):
    from plugins.consent.demo import seed

    seed(session, clinic)

