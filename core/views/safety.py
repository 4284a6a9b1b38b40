"""Settings > Safety limits: the clinic's dose and observation limits per modality.

Tightening a limit is free for admins and managers. Loosening one beyond its label default is
refused for esketamine (84 mg ceiling, 2 hours of observation, the labelled doses) and for the
other modalities is an admin's change, audited with the values it changed. Every save is audited.
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for
from flask_login import current_user
from sqlmodel import select

from core import audit, dosing
from core.auth import staff
from core.db import get_session
from core.form_fields import CheckField, GliaForm, NumberField
from core.models import Modality, utcnow

bp = Blueprint("safety", __name__, url_prefix="/settings/safety")
MANAGERS = ("admin", "manager")
BOUNDS = {"mg": (1, 2000), "mg_per_kg": (0.05, 5)}  # plausible at all, before any label comparison
LABELS = {"usual_min": "Usual range from", "usual_max": "Usual range to", "ceiling": "Hard ceiling",
          "min_observation_minutes": "Minimum observation (minutes)", "allowed_doses": "Allowed doses"}


def _page(status: int = 200, *, errors=None, values=None, editing: Modality | None = None):
    limits = dosing.all_limits(get_session(), g.clinic.id)
    return render_template("settings/safety.html", limits=limits, label_defaults=dosing.defaults(),
                           errors=errors or {}, values=values or {}, editing=editing, labels=LABELS), status


@bp.get("/")
@staff(*MANAGERS)
def index():
    return _page()


def limits_form(base: dosing.Limits) -> GliaForm:
    """The form for one modality's limits: a choice among the labelled doses (esketamine) or a range."""
    lo, hi = BOUNDS[base.unit]
    unit = base.unit_label
    fields: dict = {"min_observation_minutes": NumberField(LABELS["min_observation_minutes"], 0, 600),
                    "ceiling": NumberField(f"Hard ceiling ({unit})", lo, hi, integer=False)}
    if base.allowed_doses:
        fields.update({f"dose_{d:g}": CheckField(f"{d:g} mg") for d in dosing.defaults()[base.modality].allowed_doses})
    else:
        fields.update(usual_min=NumberField(f"Usual range from ({unit})", lo, hi, integer=False),
                      usual_max=NumberField(f"Usual range to ({unit})", lo, hi, integer=False))
    return type("LimitsForm", (GliaForm,), fields)()


def _read(form: GliaForm, base: dosing.Limits, problems: dict) -> dict | None:
    """The submitted limits for one modality, checked for sense (not yet against the label)."""
    ok = form.validate()
    new = {"min_observation_minutes": form.min_observation_minutes.number, "ceiling": form.ceiling.number}
    if base.allowed_doses:  # esketamine: a choice among the labelled doses, not a range
        label_doses = dosing.defaults()[base.modality].allowed_doses
        chosen = [d for d in label_doses if form[f"dose_{d:g}"].data]
        if not chosen:
            problems["allowed_doses"] = "Allow at least one labelled dose."
        new.update(allowed_doses=chosen, usual_min=min(chosen, default=0), usual_max=max(chosen, default=0))
        if new["ceiling"] is not None and chosen and max(chosen) > new["ceiling"]:
            form.refuse("ceiling", "The ceiling is below an allowed dose.")
            ok = False
    else:
        new.update(allowed_doses=[], usual_min=form.usual_min.number, usual_max=form.usual_max.number)
        if None not in (new["usual_min"], new["usual_max"], new["ceiling"]):
            if new["usual_min"] > new["usual_max"]:
                form.refuse("usual_max", "The usual range must end at or above where it starts.")
                ok = False
            elif new["usual_max"] > new["ceiling"]:
                form.refuse("ceiling", "The hard ceiling must be at or above the usual range.")
                ok = False
    return new if ok and not problems else None


def _loosened(new: dict, current: dosing.Limits, label: dosing.Limits) -> list[str]:
    """The changed values that go beyond the default, each as "field old→new (default d)"."""
    beyond = {"usual_min": new["usual_min"] < label.usual_min, "usual_max": new["usual_max"] > label.usual_max,
              "ceiling": new["ceiling"] > label.ceiling,
              "min_observation_minutes": new["min_observation_minutes"] < label.min_observation_minutes,
              "allowed_doses": not set(new["allowed_doses"]) <= set(label.allowed_doses)}
    return [f"{name} {getattr(current, name):g}→{new[name]:g} (default {getattr(label, name):g})"
            for name, past in beyond.items() if past and name != "allowed_doses" and new[name] != getattr(current, name)]


def _show(value) -> str:
    return "/".join(f"{d:g}" for d in value) if isinstance(value, (list, tuple)) else f"{value:g}"


def _changes(new: dict, current: dosing.Limits) -> str:
    return "; ".join(f"{name} {_show(getattr(current, name))}→{_show(new[name])}" for name in dosing.EDITABLE
                     if _show(getattr(current, name)) != _show(new[name]))


@bp.post("/<modality>")
@staff(*MANAGERS)
def update(modality: str):
    if modality not in Modality._value2member_map_:
        abort(404)
    modality = Modality(modality)
    db = get_session()
    current = dosing.limits_for(db, g.clinic.id, modality)
    label = dosing.defaults()[modality]
    form, problems = limits_form(current), {}
    new = _read(form, current, problems)
    loosened = []
    if new is not None:
        loosened = _loosened(new, current, label)
        if loosened and label.label_locked:
            problems["loosen"] = (
                f"{modality.label} follows its label: at most {label.ceiling:g} mg in one session and at least "
                f"{label.min_observation_minutes} minutes of observation. A clinic may tighten these, never loosen them.")
        elif loosened and current_user.role.value != "admin":
            problems["loosen"] = ("Loosening a limit beyond its label default needs an administrator: "
                                      + "; ".join(loosened) + ".")
        if problems:
            audit.record_denied("dose_limit.loosen", object_type="dose_limit", object_id=modality.value,
                                detail="; ".join(loosened)[:500])
    if new is None or problems:
        return _page(422, errors={**form.messages, **problems}, values=form.values, editing=modality)
    row = db.exec(select(dosing.DoseLimit).where(dosing.DoseLimit.clinic_id == g.clinic.id,
                                                 dosing.DoseLimit.modality == modality)).first()
    row = row or dosing.DoseLimit(clinic_id=g.clinic.id, modality=modality, unit=label.unit)
    detail = _changes(new, current) or "no change"
    for name in dosing.EDITABLE:
        setattr(row, name, new[name])
    row.updated_at, row.updated_by_id = utcnow(), current_user.id
    db.add(row)
    audit.record("dose_limit.loosen" if loosened else "dose_limit.update", object_type="dose_limit",
                 object_id=modality.value, detail=detail[:500])
    flash(f"{modality.label}: limits saved." + (" Loosened beyond the label default; the change is audited." if loosened else ""))
    return redirect(url_for("safety.index"))
