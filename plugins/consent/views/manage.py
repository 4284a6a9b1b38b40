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
from core.validators import clean_text
from plugins.consent import service
from plugins.consent.models import ConsentTemplate, ContraindicationItem, SignedConsent
from plugins.consent.views.base import MANAGERS, bp, deny, template_or_404


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
    values = {k: clean_text(request.form.get(k, "")).replace("\r\n", "\n") for k in
              ("title", "body", "acknowledgements", "change_note")}
    if request.form.get("base_version") != str(current.version):
        return page(409, values=values, conflict=f"Someone saved version {current.version} while you were editing. "
                                                 "Compare with the current text below; nothing was saved.")
    acks = [line.strip() for line in values["acknowledgements"].split("\n") if line.strip()]
    errors = {}
    if not 3 <= len(values["title"]) <= 200:
        errors["title"] = "Give a title of 3 to 200 characters."
    if not 20 <= len(values["body"]) <= 50_000:
        errors["body"] = "The consent text must be between 20 and 50,000 characters."
    if not acks or len(acks) > 20 or any(len(a) > 500 for a in acks):
        errors["acknowledgements"] = "Give 1 to 20 statements to tick, one per line, each up to 500 characters."
    if len(values["change_note"]) > 300:
        errors["change_note"] = "Use at most 300 characters."
    if errors:
        return page(422, errors, values)
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


def _item_values(form) -> tuple[dict, dict]:
    values = {"label": clean_text(form.get("label")), "severity": form.get("severity", ""),
              "modalities": [m for m in service.MODALITIES if form.get(f"modality_{m}") == "1"],
              "active": form.get("active") == "1"}
    errors = {}
    if not 3 <= len(values["label"]) <= 300:
        errors["label"] = "Give the question a label of 3 to 300 characters."
    if values["severity"] not in ("absolute", "relative"):
        errors["severity"] = "Choose absolute or relative."
    if not values["modalities"]:
        errors["modalities"] = "Choose at least one modality it applies to."
    return values, errors


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
    values, errors = _item_values(request.form)
    if errors:
        return _items_page(422, errors, values, editing="new")
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
    values, errors = _item_values(request.form)
    if errors:
        return _items_page(422, errors, values, editing=item.id)
    for key, value in values.items():
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
    new, errors = {}, {}
    for m, _label in modalities:
        new[f"required_{m}"] = [k for k in service.KINDS if request.form.get(f"required_{m}_{k}") == "1"]
    for m in service.uninformed_modalities(new):
        titles = " or ".join(f"“{service.KINDS[k]}”" for k, informs in service.INFORMED.items() if m in informs)
        errors[f"required_{m}"] = (f"{MODALITY_LABELS[Modality(m)]} must require an informed consent: "
                                   f"tick {titles}.")
    for key, (low, high) in LIMITS.items():
        raw = request.form.get(key, "").strip()
        if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
            errors[key] = f"Enter a whole number from {low} to {high}."
            new[key] = raw
        else:
            new[key] = int(raw)
    if errors:
        return render_template("consent/settings.html", values={**values, **new}, errors=errors,
                               modalities=modalities, kinds=service.KINDS, limits=LIMITS), 422
    save_settings(db, g.clinic, service.PLUGIN, new)
    flash("Consent settings saved.")
    return redirect(url_for("consent.settings"))
