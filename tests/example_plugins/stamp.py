"""Overrides render_pdf (a firstresult hook): every PDF carries a stamp line, proving the plugin won."""
from __future__ import annotations

from core.hookspecs import hookimpl
from core import pdf

STAMP = "Stamped by the stamp plugin"


@hookimpl
def render_pdf(html, base_url):
    return pdf.render_pdf(  # core's WeasyPrint renderer, on the stamped HTML
        html.replace("<body>", f"<body><p>{STAMP}</p>", 1), base_url)
