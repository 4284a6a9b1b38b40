"""Enabling and disabling plugins per clinic, and their per-clinic settings."""
from __future__ import annotations

from flask import current_app
from sqlmodel import Session, select

from core import audit
from core.models import Clinic, PluginState


class UnknownPlugin(LookupError):
    pass


def set_enabled(session: Session, clinic: Clinic, plugin: str, enabled: bool, *, plugins: dict) -> bool:
    """Switch ``plugin`` for ``clinic``; returns True if anything changed. Audited."""
    if plugin not in plugins:
        raise UnknownPlugin(plugin)
    state = session.get(PluginState, (clinic.id, plugin))
    if state is None:
        state = PluginState(clinic_id=clinic.id, plugin=plugin, enabled=True, settings={})
    if state.enabled == enabled and state in session:
        return False
    changed = state.enabled != enabled
    state.enabled = enabled
    session.add(state)
    audit.append(session, "plugin.enabled" if enabled else "plugin.disabled",
                 object_type="plugin", object_id=plugin, clinic_id=clinic.id)
    return changed


def states(session: Session, clinic_ids: list[int]) -> dict[tuple[int, str], PluginState]:
    rows = session.exec(select(PluginState).where(PluginState.clinic_id.in_(clinic_ids))).all()
    return {(r.clinic_id, r.plugin): r for r in rows}


def settings_for(session: Session, clinic: Clinic, plugin: str) -> dict:
    """The plugin's declared defaults overlaid with what the clinic saved."""
    declared = current_app.extensions["glia"].settings.get(plugin, {})
    values = {key: s.default for key, s in declared.items()}
    state = session.get(PluginState, (clinic.id, plugin))
    if state is not None:
        values.update({k: v for k, v in (state.settings or {}).items() if k in declared})
    return values


def save_settings(session: Session, clinic: Clinic, plugin: str, values: dict) -> None:
    declared = current_app.extensions["glia"].settings.get(plugin, {})
    state = session.get(PluginState, (clinic.id, plugin)) or PluginState(
        clinic_id=clinic.id, plugin=plugin, enabled=True, settings={})
    state.settings = {**(state.settings or {}), **{k: v for k, v in values.items() if k in declared}}
    session.add(state)
    audit.append(session, "plugin.settings_changed", object_type="plugin", object_id=plugin, clinic_id=clinic.id)
