"""The patient portal: the patient's own sessions, change requests and questionnaires, and the staff side
of what patients send (open change requests, the clinic's questionnaire rule).

``bp`` is the patient's blueprint (/portal, every route patient-only and scoped to the signed-in
patient); ``staff_bp`` holds the staff pages.
"""
from flask import Blueprint

bp = Blueprint("portal", __name__, url_prefix="/portal")
staff_bp = Blueprint("portal_staff", __name__)

from core.portal import staff, views  # noqa: E402,F401  (routes)
