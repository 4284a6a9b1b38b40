"""The small values plugins hand back from hooks; core validates and orders them.

The contract cannot leak HTML: every value checks itself as it is made, whoever makes it.
An ``html`` field keeps only Markup (``render(...)`` output, or ``Markup("<p>{}</p>").format(v)``);
anything else is escaped as text, so a plugin that builds HTML with an f-string shows its tags
instead of running them (and the relay logs that as the plugin's mistake). Titles, labels,
reasons and details are always text. A link must be a path on this site or an http(s) URL.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from markupsafe import Markup, escape

_INVISIBLE = re.compile(r"[\x00-\x20\x7f]")  # browsers ignore these inside a scheme ("java\tscript:")


def render(template: str, /, **context) -> Markup:
    """A plugin's template rendered (Jinja escapes every value) as the Markup an ``html`` field takes."""
    from flask import render_template

    return Markup(render_template(template, **context))


class UnsafeLink(ValueError):
    """A slot's link would run script (javascript:, data:...) instead of opening a page."""


class _Checked:
    """Fields named in ``_text`` become plain str, ``_links`` are checked, ``_html`` keeps only Markup."""

    _text: tuple[str, ...] = ()
    _links: tuple[str, ...] = ()
    _html: tuple[str, ...] = ()

    def __post_init__(self):
        for name in self._text:
            object.__setattr__(self, name, str(getattr(self, name)))
        for name in self._links:
            url = str(getattr(self, name))
            scheme = urlsplit(_INVISIBLE.sub("", url)).scheme.lower()
            if scheme not in ("", "http", "https"):
                raise UnsafeLink(f"{type(self).__name__}.{name} must be a path on this site or an http(s) "
                                 f"URL, not a {scheme}: link")
            object.__setattr__(self, name, url)
        for name in self._html:
            value = getattr(self, name)
            if not isinstance(value, Markup):
                object.__setattr__(self, name, escape(str(value)))
                object.__setattr__(self, "escaped", True)  # read by the relay, which names the plugin


@dataclass(frozen=True)
class NavItem(_Checked):
    """A link in the main navigation."""

    label: str
    url: str
    order: int = 100
    roles: tuple[str, ...] = ("admin", "manager", "clinician", "front_desk")
    _text = ("label",)
    _links = ("url",)


@dataclass(frozen=True)
class Widget(_Checked):
    """A dashboard card; ``html`` is Markup (use ``render``), anything else is shown as escaped text."""

    title: str
    html: Markup
    order: int = 100
    _text = ("title",)
    _html = ("html",)


@dataclass(frozen=True)
class Panel(_Checked):
    """A section of the patient chart or the session page; ``html`` as for Widget."""

    title: str
    html: Markup
    order: int = 100
    _text = ("title",)
    _html = ("html",)


@dataclass(frozen=True)
class PortalItem(_Checked):
    """Something a patient sees in the portal: a document to download or a task to do."""

    title: str
    url: str
    kind: str = "document"  # document, task
    detail: str = ""
    order: int = 100
    _text = ("title", "detail")
    _links = ("url",)


@dataclass(frozen=True)
class Blocker(_Checked):
    """Why a treatment session may not start, and where to fix it."""

    reason: str
    link: str = ""
    _text = ("reason",)
    _links = ("link",)


@dataclass(frozen=True)
class Setting:
    """One per-clinic setting a plugin declares, with its default."""

    key: str
    label: str
    default: object
    help: str = ""
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class DocumentType:
    """A kind of issued, immutable document a plugin produces."""

    kind: str
    label: str


@dataclass(frozen=True)
class LetterSection(_Checked):
    """A section another plugin adds to a care-coordination letter; ``html`` as for Widget."""

    title: str
    html: Markup
    order: int = 100
    _text = ("title",)
    _html = ("html",)


@dataclass
class PluginError:
    """Recorded when a plugin raised inside a hook, so the page can say a part is missing.

    ``detail`` (the exception's type and message) is filled only where GLIA_SHOW_ERRORS is on,
    never in production: exception text may hold patient data.
    """

    plugin: str
    hook: str
    message: str = field(default="This part could not be shown.")
    detail: str = ""
