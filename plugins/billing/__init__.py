"""Private-pay billing: fee schedule, invoices, payments, superbills and Good Faith Estimates."""
from __future__ import annotations

from flask import render_template, url_for
from markupsafe import Markup

from core.hookspecs import hookimpl
from core.slots import DocumentType, NavItem, Panel, PortalItem, Setting

__version__ = "0.1.0"
GLIA_CONTRACT = ">=1.0,<2"
BILLING_ROLES = ("admin", "manager", "front_desk")


@hookimpl
def register_models():
    from plugins.billing.models import MODELS

    return MODELS


@hookimpl
def register_blueprints(app):
    from plugins.billing.views import bp

    app.register_blueprint(bp)


@hookimpl
def register_commands(cli):
    from plugins.billing.cli import billing_group

    cli.add_command(billing_group)


@hookimpl
def register_settings():
    return [
        Setting("esketamine_billing", "Esketamine sessions are billed as", "office_visit_j0013",
                help="An office visit plus J0013 per mg, or the Medicare G2082/G2083 visit codes (never both).",
                choices=("office_visit_j0013", "g_codes")),
        Setting("office_visit_code", "Office visit code for esketamine and sublingual sessions", "99213",
                choices=("99212", "99213", "99214", "99215")),
    ]


@hookimpl
def register_document_types():
    return [DocumentType("superbill", "Superbill"), DocumentType("good_faith_estimate", "Good Faith Estimate")]


@hookimpl
def nav_items(clinic, user):
    return [NavItem("Billing", url_for("billing.index"), order=60, roles=BILLING_ROLES)]


@hookimpl
def patient_chart_panels(clinic, patient, user):
    """Balance and links on the chart, for the roles that handle money (no clinical data)."""
    if user.role.value not in BILLING_ROLES:
        return []
    from sqlmodel import select

    from core.db import get_session
    from plugins.billing.models import BillingInvoice
    from plugins.billing.payments import invoice_totals

    session = get_session()
    invoices = session.exec(select(BillingInvoice).where(BillingInvoice.clinic_id == clinic.id,
                                                         BillingInvoice.patient_id == patient.id)).all()
    totals = invoice_totals(session, list(invoices))
    balance = sum(t.balance for t in totals.values())
    html = render_template("billing/_chart_panel.html", patient=patient, balance=balance, invoices=len(invoices))
    return [Panel("Billing", Markup(html), order=80)]


@hookimpl
def portal_items(clinic, patient):
    return [PortalItem("Billing and superbills", url_for("billing.portal_home"), kind="document",
                       detail="Invoices, payments, receipts, superbills and estimates", order=50)]


@hookimpl
def patient_documents(clinic, patient):
    from core.db import get_session
    from plugins.billing.documents import exportable_documents

    return exportable_documents(get_session(), clinic, patient)


@hookimpl
def treatment_completed(clinic, treatment):
    """A discharged session becomes draft charge lines for a manager to review."""
    from core.db import get_session
    from core.plugin_state import settings_for
    from plugins.billing.charges import draft_charges

    session = get_session()
    draft_charges(session, clinic, treatment, settings_for(session, clinic, "billing"))


@hookimpl
def seed_demo_data(session, clinic):
    from plugins.billing.demo import seed

    seed(session, clinic)
