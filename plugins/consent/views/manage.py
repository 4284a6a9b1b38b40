"""The manager's consent pages: template versions, the screening list and the consent settings.

Bad input re-renders the form with 422 and writes nothing.
"""
from __future__ import annotations

import uuid

from flask import flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from sqlmodel import func, select

from core import audit
from core.auth import staff
from core.db import get_session
from core.models import MODALITY_LABELS, Modality, utcnow
from plugins.consent import service
from plugins.consent.models import ConsentTemplate, ContraindicationItem, SignedConsent
from plugins.consent.views.base import MANAGERS, bp, deny, template_or_404
from plugins.consent.views.forms import TemplateForm, question_form, settings_form


@bp.get("/templates")
@staff(*MANAGERS)
def templates():
    db = get_session()
    current = service.current_templates(db, g.clinic)
    counts = dict(db.exec(select(SignedConsent.template_id, func.count()).where(
        SignedConsent.clinic_id == g.clinic.id).group_by(SignedConsent.template_id)).all())
    return render_template("consent/templates.html", current=current, kinds=service.KINDS, counts=counts)


@bp.route("/templates/<kind>", methods=["GET", "POST"])
@staff(*MANAGERS)
def template_edit(kind: str):
    """Saving makes a new version; signed copies keep the text they were signed with."""
    db = get_session()
    current = template_or_404(kind)
    history = db.exec(select(ConsentTemplate).where(ConsentTemplate.clinic_id == g.clinic.id,
                                                    ConsentTemplate.kind == kind)
                      .order_by(ConsentTemplate.version.desc())).all()

    def page(status=200, errors=None, values=None, conflict=""):
        shown = values or {"title": current.title, "body": current.body,
                           "acknowledgements": "\n".join(current.acknowledgements), "change_note": ""}
        return render_template("consent/template_edit.html", current=current, history=history, values=shown,
                               errors=errors or {}, conflict=conflict,
                               preview=service.markdown(shown["body"])), status

    if request.method == "GET":
        return page()
    form = TemplateForm()
    values = form.shown
    if form.base_version.data != str(current.version):
        return page(409, values=values, conflict=f"Someone saved version {current.version} while you were editing. "
                                                 "Compare with the current text below; nothing was saved.")
    if not form.validate():
        return page(422, form.messages, values)
    acks = form.statements
    if (values["title"], values["body"], acks) == (current.title, current.body.strip(), current.acknowledgements):
        flash("No changes: the current version stays.")
        return redirect(url_for("consent.templates"))
    new = ConsentTemplate(clinic_id=g.clinic.id, kind=kind, version=current.version + 1, title=values["title"],
                          body=values["body"], acknowledgements=acks, change_note=values["change_note"],
                          created_by_id=current_user.id, created_at=utcnow())
    db.add(new)
    db.flush()
    audit.record("consent.template_versioned", object_type="consent_template", object_id=new.id,
                 detail=f"{kind} v{new.version}")
    flash(f"Saved as version {new.version}. Patients must sign it again before their next treatment.")
    return redirect(url_for("consent.templates"))


def _items_page(status=200, errors=None, values=None, editing=None):
    items = get_session().exec(select(ContraindicationItem).where(ContraindicationItem.clinic_id == g.clinic.id)
                               .order_by(ContraindicationItem.position, ContraindicationItem.id)).all()
    return render_template("consent/contraindications.html", items=items, errors=errors or {}, values=values or {},
                           editing=editing, modalities=[(m.value, m.label) for m in Modality]), status


@bp.route("/contraindications", methods=["GET", "POST"])
@staff(*MANAGERS)
def contraindications():
    db = get_session()
    service.ensure_clinic_data(db, g.clinic)
    if request.method == "GET":
        return _items_page()
    form = question_form(service.MODALITIES)
    if not form.validate():
        return _items_page(422, form.messages, form.item_values, editing="new")
    values = form.item_values
    position = db.exec(select(func.max(ContraindicationItem.position)).where(
        ContraindicationItem.clinic_id == g.clinic.id)).one() or 0
    db.add(ContraindicationItem(clinic_id=g.clinic.id, code=f"custom_{uuid.uuid4().hex[:10]}", position=position + 1,
                                label=values["label"], severity=values["severity"], modalities=values["modalities"],
                                active=True))
    audit.record("consent.screening_list_changed", object_type="clinic", object_id=g.clinic.id, detail="added")
    flash("Question added. It is asked in every new screening.")
    return redirect(url_for("consent.contraindications"))


@bp.post("/contraindications/<int:item_id>")
@staff(*MANAGERS)
def contraindication_edit(item_id: int):
    db = get_session()
    item = db.exec(select(ContraindicationItem).where(ContraindicationItem.id == item_id,
                                                      ContraindicationItem.clinic_id == g.clinic.id)).first()
    if item is None:
        deny("contraindication", item_id)
    form = question_form(service.MODALITIES)
    if not form.validate():
        return _items_page(422, form.messages, form.item_values, editing=item.id)
    for key, value in form.item_values.items():
        setattr(item, key, value)
    db.add(item)
    audit.record("consent.screening_list_changed", object_type="contraindication", object_id=item.id, detail="edited")
    flash("Saved. Earlier screenings keep the questions as they were asked.")
    return redirect(url_for("consent.contraindications"))


LIMITS = {"validity_days": (1, 3650), "screening_validity_days": (1, 3650), "bp_systolic_max": (100, 240),
          "bp_diastolic_max": (60, 140)}


@bp.route("/settings", methods=["GET", "POST"])
@staff(*MANAGERS)
def settings():
    """Which consents each modality requires, validity and the BP threshold.

    Every modality must keep an informed consent for that modality among its required ones: a save
    that would let a session start without one is refused."""
    from core.plugin_state import save_settings

    db = get_session()
    values = service.settings(db, g.clinic)
    modalities = [(m.value, m.label) for m in Modality]
    if request.method == "GET":
        return render_template("consent/settings.html", values=values, errors={}, modalities=modalities,
                               kinds=service.KINDS, limits=LIMITS)
    form = settings_form([m for m, _label in modalities], service.KINDS, LIMITS)
    form.validate()
    new, errors = {**form.required, **form.numbers()}, form.messages
    for m in service.uninformed_modalities(new):
        titles = " or ".join(f"“{service.KINDS[k]}”" for k, informs in service.INFORMED.items() if m in informs)
        errors[f"required_{m}"] = (f"{MODALITY_LABELS[Modality(m)]} must require an informed consent: "
                                   f"tick {titles}.")
    if errors:
        return render_template("consent/settings.html", values={**values, **new}, errors=errors,
                               modalities=modalities, kinds=service.KINDS, limits=LIMITS), 422
    save_settings(db, g.clinic, service.PLUGIN, new)
    flash("Consent settings saved.")
    return redirect(url_for("consent.settings"))
