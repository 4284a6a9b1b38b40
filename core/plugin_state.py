"""Enabling and disabling plugins per clinic, and their per-clinic settings.

A plugin that answers treatment_blockers is a safety gate: switching it off lets sessions start
without its checks, so that takes a written reason (audited), and session pages say it is off.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from flask import current_app, g, has_app_context
from sqlalchemy import func
from sqlmodel import Session, select

from core import audit
from core.models import AuditEvent, Clinic, PluginState, User
from core.validators import clean_text

GATE_HOOK = "treatment_blockers"
REASON_MAX = 500  # the audit row's detail holds the reason whole


class UnknownPlugin(LookupError):
    pass


class ReasonRequired(ValueError):
    """A safety gate is switched off only with a written reason (of at most REASON_MAX characters)."""


@dataclass(frozen=True)
class GateOff:
    """A safety gate switched off for a clinic, as the session pages announce it."""

    plugin: str
    description: str
    by: str  # who switched it off, "" when no audit row says so
    at: datetime | None
    reason: str


def is_gate(plugins: dict, plugin: str) -> bool:
    info = plugins.get(plugin)
    return info is not None and GATE_HOOK in info.hooks


def is_on(row: PluginState | None, info) -> bool:
    """A clinic's switch for a plugin: its saved choice, else the plugin's GLIA_DEFAULT_ENABLED."""
    return info.default_enabled if row is None else row.enabled


def clean_reason(value: str | None) -> str:
    """Staff-written policy text on one line: control characters become spaces, runs of space collapse."""
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in clean_text(value))
    return re.sub(r"\s+", " ", text).strip()


def reason_problem(reason: str, *, required: bool = True) -> str | None:
    if required and not reason:
        return "Write why this safety gate is being switched off."
    if len(reason) > REASON_MAX:
        return f"Reason: at most {REASON_MAX} characters."
    return None


def set_enabled(session: Session, clinic: Clinic, plugin: str, enabled: bool, *, plugins: dict,
                reason: str = "") -> bool:
    """Switch ``plugin`` for ``clinic``; returns True if anything changed. Audited, with the reason.

    Every path (admin page, CLI, a shell) comes through here, so none can switch a gate off
    without a reason: ReasonRequired, and nothing is written.
    """
    if plugin not in plugins:
        raise UnknownPlugin(plugin)
    reason = clean_reason(reason)
    if problem := reason_problem(reason, required=not enabled and is_gate(plugins, plugin)):
        raise ReasonRequired(problem)
    state = session.get(PluginState, (clinic.id, plugin))
    if state is None:
        state = PluginState(clinic_id=clinic.id, plugin=plugin, enabled=plugins[plugin].default_enabled, settings={})
    _forget(session, clinic)
    if state.enabled == enabled and state in session:
        return False
    changed = state.enabled != enabled
    state.enabled = enabled
    session.add(state)
    audit.append(session, "plugin.enabled" if enabled else "plugin.disabled",
                 object_type="plugin", object_id=plugin, clinic_id=clinic.id,
                 detail="" if enabled else reason)
    return changed


_STATES = "glia_plugin_states"  # session.info key: clinic id -> {plugin: its row}


def clinic_states(session: Session, clinic: Clinic) -> dict[str, PluginState]:
    """The clinic's plugin rows (switches and settings), read once per session.

    Every page asks which plugins are on and several plugins read their settings: one query
    serves them all. Switching or saving through this module forgets the cached rows.
    """
    cache = session.info.setdefault(_STATES, {})
    if clinic.id not in cache:
        rows = session.exec(select(PluginState).where(PluginState.clinic_id == clinic.id)).all()
        cache[clinic.id] = {r.plugin: r for r in rows}
    return cache[clinic.id]


def _forget(session: Session, clinic: Clinic) -> None:
    from core.hooks import ENABLED

    session.info.get(_STATES, {}).pop(clinic.id, None)
    if has_app_context():
        g.get(ENABLED, {}).pop(clinic.id, None)


def states(session: Session, clinic_ids: list[int]) -> dict[tuple[int, str], PluginState]:
    rows = session.exec(select(PluginState).where(PluginState.clinic_id.in_(clinic_ids))).all()
    return {(r.clinic_id, r.plugin): r for r in rows}


def gates_off(session: Session, clinic: Clinic | None) -> list[GateOff]:
    """The safety gates switched off for ``clinic``, with who, when and why (for every session page)."""
    if clinic is None:
        return []
    plugins = current_app.extensions["glia"].plugins
    if not any(not r.enabled and is_gate(plugins, name) for name, r in clinic_states(session, clinic).items()):
        return []  # the usual case, answered from the rows this request has already read
    return gates_off_by_clinic(session, [clinic.id]).get(clinic.id, [])


def gates_off_by_clinic(session: Session, clinic_ids: list[int]) -> dict[int, list[GateOff]]:
    """Two queries for any number of clinics: the switched-off gates, then each one's latest switch.

    A gate that is off while its latest audited switch is not a plugin.disabled row (written
    around the app) is still announced, with no name, date or reason rather than a stale one.
    """
    plugins = current_app.extensions["glia"].plugins
    gates = sorted(name for name in plugins if is_gate(plugins, name))
    if not gates or not clinic_ids:
        return {}
    off = session.exec(select(PluginState.clinic_id, PluginState.plugin).where(
        PluginState.clinic_id.in_(clinic_ids), PluginState.plugin.in_(gates),
        PluginState.enabled == False)).all()  # noqa: E712 - SQL comparison
    if not off:
        return {}
    latest = (select(func.max(AuditEvent.id))
              .where(AuditEvent.action.in_(("plugin.disabled", "plugin.enabled")),
                     AuditEvent.object_type == "plugin", AuditEvent.clinic_id.in_(clinic_ids),
                     AuditEvent.object_id.in_(gates))
              .group_by(AuditEvent.clinic_id, AuditEvent.object_id))
    switches = {(e.clinic_id, e.object_id): (e, name) for e, name in session.exec(
        select(AuditEvent, User.name).outerjoin(User, User.id == AuditEvent.user_id)
        .where(AuditEvent.id.in_(latest))).all()}
    found: dict[int, list[GateOff]] = {}
    for clinic_id, plugin in sorted(off):
        event, name = switches.get((clinic_id, plugin), (None, None))
        if event is None or event.action != "plugin.disabled":
            event = None
        by = "" if event is None else name or ("the glia command line" if event.role == "system" else "")
        found.setdefault(clinic_id, []).append(GateOff(
            plugin, plugins[plugin].description, by, event.at if event else None, event.detail if event else ""))
    return found


def settings_for(session: Session, clinic: Clinic, plugin: str) -> dict:
    """The plugin's declared defaults overlaid with what the clinic saved."""
    declared = current_app.extensions["glia"].settings.get(plugin, {})
    values = {key: s.default for key, s in declared.items()}
    state = clinic_states(session, clinic).get(plugin)
    if state is not None:
        values.update({k: v for k, v in (state.settings or {}).items() if k in declared})
    return values


def save_settings(session: Session, clinic: Clinic, plugin: str, values: dict) -> None:
    declared = current_app.extensions["glia"].settings.get(plugin, {})
    info = current_app.extensions["glia"].plugins.get(plugin)
    state = session.get(PluginState, (clinic.id, plugin)) or PluginState(  # saving settings switches nothing
        clinic_id=clinic.id, plugin=plugin, enabled=info.default_enabled if info else True, settings={})
    _forget(session, clinic)
    state.settings = {**(state.settings or {}), **{k: v for k, v in values.items() if k in declared}}
    session.add(state)
    audit.append(session, "plugin.settings_changed", object_type="plugin", object_id=plugin, clinic_id=clinic.id)
