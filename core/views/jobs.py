"""The jobs page: this clinic's batches on the queue, with their state and progress.

Only counts are shown (and kept in Redis); which patients a batch covered is in the database,
on each patient's superbills.
"""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, g, render_template

from core import queue
from core.auth import staff

bp = Blueprint("jobs", __name__, url_prefix="/jobs")
MANAGERS = ("admin", "manager")


@bp.route("/")
@staff(*MANAGERS)
def index():
    if not queue.configured():
        return render_template("jobs/index.html", configured=False, batches=[])
    batches = queue.for_clinic(g.clinic.id)
    return render_template("jobs/index.html", configured=True, batches=batches,
                           active=any(not b.finished for b in batches),
                           started={b.id: datetime.fromtimestamp(b.created_at, timezone.utc) for b in batches})
