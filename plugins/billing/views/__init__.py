"""The billing blueprint: staff pages under /billing/ and the patient's own billing in the portal.

Every lookup is scoped by the current clinic (and, in the portal, by the signed-in patient); a
foreign id answers 404 and leaves a denied-access audit row. Bad input re-renders the form with
HTTP 422, and the request's transaction is rolled back, so nothing is half-written.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint

bp = Blueprint("billing", __name__, url_prefix="/billing",
               template_folder=str(Path(__file__).resolve().parent.parent / "templates"))

from plugins.billing.views import accounts, common, documents, portal, review  # noqa: E402,F401  (routes)
