"""The one place that turns HTML into PDF bytes.

Core's WeasyPrint renderer is itself a plugin implementation (trylast), so a deployment can
swap the engine through the render_pdf hook without touching callers.

Building a WeasyPrint FontConfiguration (fontconfig and a Pango font map) costs about a third of
a one-page render, so each thread keeps one for every render it does: a batch worker or a
gunicorn thread pays it once. Pango font maps are not thread-safe, hence one per thread rather
than one per process. Our documents declare no @font-face, so a kept configuration holds only
the system fonts and cannot carry one document's fonts into another.
"""
from __future__ import annotations

import threading
from pathlib import Path

from flask import current_app, render_template

from core.hookspecs import hookimpl

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

_thread = threading.local()


def font_config():
    """This thread's FontConfiguration, made on first use."""
    config = getattr(_thread, "font_config", None)
    if config is None:
        from weasyprint.text.fonts import FontConfiguration

        config = _thread.font_config = FontConfiguration()
    return config


def warm() -> None:
    """Import WeasyPrint and load this thread's fonts before the first real document (batch workers)."""
    render_pdf("<p>warm</p>", base_url=None)


@hookimpl(trylast=True)
def render_pdf(html, base_url):
    """WeasyPrint, imported lazily: it costs most of a second to import."""
    from weasyprint import HTML

    return HTML(string=html, base_url=base_url).write_pdf(font_config=font_config())


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
