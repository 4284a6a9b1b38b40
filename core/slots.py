"""The small values plugins hand back from hooks; core validates and orders them."""
from __future__ import annotations

from dataclasses import dataclass, field

from markupsafe import Markup


@dataclass(frozen=True)
class NavItem:
    """A link in the main navigation."""

    label: str
    url: str
    order: int = 100
    roles: tuple[str, ...] = ("admin", "manager", "clinician", "front_desk")


@dataclass(frozen=True)
class Widget:
    """A dashboard card. ``html`` comes from render_template, so it is already escaped."""

    title: str
    html: Markup
    order: int = 100


@dataclass(frozen=True)
class Panel:
    """A section of the patient chart."""

    title: str
    html: Markup
    order: int = 100


@dataclass(frozen=True)
class PortalItem:
    """Something a patient sees in the portal: a document to download or a task to do."""

    title: str
    url: str
    kind: str = "document"  # document, task
    detail: str = ""
    order: int = 100


@dataclass(frozen=True)
class Blocker:
    """Why a treatment session may not start, and where to fix it."""

    reason: str
    link: str = ""


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
class LetterSection:
    """A section another plugin adds to a care-coordination letter."""

    title: str
    html: Markup
    order: int = 100


@dataclass
class PluginError:
    """Recorded when a plugin raised inside a hook, so the page can say a part is missing."""

    plugin: str
    hook: str
    message: str = field(default="This part could not be shown.")
