"""The one place that turns HTML into PDF bytes.

Core's WeasyPrint renderer is itself a plugin implementation (trylast), so a deployment can
swap the engine through the render_pdf hook without touching callers.
"""
from __future__ import annotations

from pathlib import Path

from flask import current_app, render_template

from core.hookspecs import hookimpl

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


@hookimpl(trylast=True)
def render_pdf(html, base_url):
    """WeasyPrint, imported lazily: it costs most of a second to import."""
    from weasyprint import HTML

    return HTML(string=html, base_url=base_url).write_pdf()


def html_to_pdf(html: str, *, clinic=None) -> bytes:
    from core.hooks import relay

    return relay(clinic).call("render_pdf", html=html, base_url=str(STATIC_DIR))


def render_pdf_template(template: str, *, clinic=None, **context) -> tuple[str, bytes]:
    """Render a Jinja template to HTML and PDF; returns both, so callers can store the source."""
    html = render_template(template, clinic=clinic, **context)
    return html, html_to_pdf(html, clinic=clinic)


def pdf_response(data: bytes, filename: str):
    """A PDF download: attachment, safe ASCII file name, never cached."""
    from werkzeug.utils import secure_filename

    safe = secure_filename(filename) or "document.pdf"
    resp = current_app.response_class(data, mimetype="application/pdf")
    resp.headers["Content-Disposition"] = f'attachment; filename="{safe}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp
