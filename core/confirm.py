"""A second step before anything that cannot be taken back: cancel, no-show, refund, void.

The first POST (the button on the page) answers with a page that says exactly what will happen and
asks again; only a POST carrying ``confirm=yes`` acts. It is a plain form, so it works without
JavaScript, and the first step reads but never writes.
"""
from __future__ import annotations

from flask import render_template

from core.form_fields import GliaForm, Posted


class ConfirmForm(GliaForm):
    """The second step's one field of its own; the first form's fields come back as ``keep``."""

    confirm = Posted(max_len=10)


def confirmed() -> bool:
    return ConfirmForm().confirm.data == "yes"


def ask(*, title: str, question: str, facts: list[tuple[str, str]], consequence: str, action: str, button: str,
        back: str, keep: dict | None = None, reason: str | None = None,
        options: tuple[tuple[str, str, bool], ...] = ()):
    """The confirmation page. ``keep`` are the first form's values, sent again as hidden fields;
    ``reason`` (when not None) shows the reason field filled with what was typed; ``options`` are
    (name, label, checked) checkboxes the user may still change."""
    return render_template("confirm.html", title=title, question=question, facts=facts, consequence=consequence,
                           action=action, button=button, back=back, keep=keep or {}, reason=reason,
                           options=options)
