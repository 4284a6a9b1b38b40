"""The ratings blueprint: everything under /ratings/, each route with its access declaration."""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from core import audit
from core.auth import current_patient, patient_only, staff
from core.db import get_session
from core.models import Patient, utcnow

from .models import Rating

bp = Blueprint("ratings", __name__, url_prefix="/ratings", template_folder="templates")


@bp.get("/")
@staff()
def index():
    from . import _ratings

    return render_template("ratings/index.html", ratings=_ratings(g.clinic))


@bp.post("/patients/<int:patient_id>")
@staff("admin", "manager", "clinician")
def add(patient_id: int):
    session = get_session()
    patient = session.get(Patient, patient_id)
    if patient is None or patient.clinic_id != g.clinic.id:
        audit.record_denied("ratings.add", object_type="patient", object_id=patient_id)
        abort(404)
    score = request.form.get("score", type=int)
    if score not in range(1, 6):
        return render_template("ratings/index.html", ratings=[], error="Choose a score from 1 to 5."), 422
    rating = Rating(clinic_id=g.clinic.id, patient_id=patient.id, score=score, created_at=utcnow())
    session.add(rating)
    session.flush()
    audit.record("ratings.add", object_type="ratings_rating", object_id=rating.id, patient_id=patient.id)
    flash("Rating saved.")
    return redirect(url_for("ratings.index"))


@bp.get("/mine")
@patient_only
def mine():
    from . import _ratings

    patient = current_patient()
    audit.record("ratings.view", object_type="patient", object_id=patient.id, patient_id=patient.id)
    return render_template("ratings/mine.html", ratings=_ratings(g.clinic, patient.id))
