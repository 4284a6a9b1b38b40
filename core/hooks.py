"""Calling plugins for one clinic: the cached relay and the isolating dispatcher.

A disabled plugin is left out of the clinic's relay, so it is never called for that clinic.
Collections and events call each implementation on its own, inside a savepoint: one plugin
that raises loses its part (and its writes) while the page and the other plugins go on. The
failure is logged with the plugin's name and traceback (core.safe_logging withholds the
exception's text, which may hold patient data); it is not retried.
"""
from __future__ import annotations

import logging
from functools import lru_cache

import pluggy
from flask import current_app, g

from core.models import Clinic
from core.slots import PluginError

log = logging.getLogger("glia.plugins")
ENABLED = "_enabled_plugins"  # g key: clinic id -> its enabled plugins, for this request or command


def enabled_plugins(clinic: Clinic | None) -> frozenset[str]:
    """Names of the loaded plugins enabled for ``clinic``: its saved switch, else the plugin's default."""
    from core.db import get_session
    from core.plugin_state import clinic_states, is_on

    if clinic is None:
        return frozenset()
    cache = g.setdefault(ENABLED, {})
    if clinic.id not in cache:
        rows = clinic_states(get_session(), clinic)
        cache[clinic.id] = frozenset(name for name, info in current_app.extensions["glia"].plugins.items()
                                     if is_on(rows.get(name), info))
    return cache[clinic.id]


class Relay:
    """The hooks as one clinic sees them."""

    def __init__(self, pm: pluggy.PluginManager, enabled: frozenset[str], all_plugins: frozenset[str]):
        self.pm = pm
        self.enabled = enabled
        self._removed = [pm.get_plugin(n) for n in sorted(all_plugins - enabled)]
        self._callers: dict[str, object] = {}

    def impls(self, hook: str):
        keep = set(map(id, self._removed))
        return [i for i in getattr(self.pm.hook, hook).get_hookimpls() if id(i.plugin) not in keep]

    def call(self, hook: str, **kwargs):
        """Plain pluggy call restricted to this clinic (used for firstresult decisions)."""
        if hook not in self._callers:
            self._callers[hook] = self.pm.subset_hook_caller(hook, remove_plugins=self._removed)
        return self._callers[hook](**kwargs)

    def collect(self, hook: str, expect: type | None = None, **kwargs) -> tuple[list, list[PluginError]]:
        """Call each implementation in isolation and flatten the lists they return.

        With ``expect``, a value of another type is dropped and reported as that plugin's error.
        A slot whose html was plain text (shown escaped, see core.slots) is logged as its mistake.
        """
        results, errors = [], []
        for impl, value in self._each(hook, kwargs, errors):
            values = value if isinstance(value, (list, tuple)) else [] if value is None else [value]
            bad = [v for v in values if expect is not None and not isinstance(v, expect)]
            if bad:
                log.error("plugin %s returned %s from %s, expected %s",
                          impl.plugin_name, type(bad[0]).__name__, hook, expect.__name__)
                errors.append(PluginError(impl.plugin_name, hook, detail=_detail(
                    f"returned {type(bad[0]).__name__}, expected {expect.__name__}")))
                continue
            if any(getattr(v, "escaped", False) for v in values):
                log.warning("plugin %s returned plain text as html from %s: shown escaped; return "
                            "core.slots.render(...) or Markup", impl.plugin_name, hook)
            results.extend(values)
        return results, errors

    def fire(self, hook: str, **kwargs) -> list[PluginError]:
        """Dispatch an event to every enabled implementation, each isolated."""
        errors: list[PluginError] = []
        for _ in self._each(hook, kwargs, errors):
            pass
        return errors

    def _each(self, hook: str, kwargs: dict, errors: list[PluginError]):
        from core.db import get_session

        session = get_session()
        # pluggy calls the last registered first; we keep plugin (name) order instead,
        # still honouring tryfirst/trylast.
        impls = sorted(self.impls(hook), key=lambda i: (0 if i.tryfirst else 2 if i.trylast else 1, i.plugin_name))
        # a read-only request has nothing of its own to protect: a plugin that fails there
        # costs the read transaction (rolled back, so PostgreSQL reads on), not a savepoint each
        reads_only = g.get("db_reads_only", False) and g.get("db") is session
        for impl in impls:
            args = [kwargs[name] for name in impl.argnames]
            savepoint = None if reads_only else session.begin_nested()
            try:
                value = impl.function(*args)
                session.flush()
            except Exception as exc:  # noqa: BLE001 - isolation is the point
                if savepoint is None:
                    session.rollback()
                elif savepoint.is_active:
                    savepoint.rollback()
                log.exception("plugin %s raised in hook %s", impl.plugin_name, hook)
                errors.append(PluginError(impl.plugin_name, hook, detail=_detail(f"{type(exc).__name__}: {exc}")))
                continue
            if savepoint is not None and savepoint.is_active:
                savepoint.commit()
            yield impl, value


def _detail(text: str) -> str:
    """What went wrong, for the page, only where the deployment shows errors (never production)."""
    from core.config import show_errors

    return text if show_errors(current_app) else ""


@lru_cache(maxsize=256)
def _relay(pm: pluggy.PluginManager, enabled: frozenset[str], all_plugins: frozenset[str]) -> Relay:
    return Relay(pm, enabled, all_plugins)


def relay(clinic: Clinic | None) -> Relay:
    """The cached relay for ``clinic``; clinics with the same enabled set share one."""
    ext = current_app.extensions["glia"]
    return _relay(ext.pm, enabled_plugins(clinic), frozenset(ext.plugins))


def ordered(items: list, *, key=lambda i: (getattr(i, "order", 100), getattr(i, "title", getattr(i, "label", "")))):
    """Sort hook results by their explicit order, then by title, so output never depends on load order."""
    return sorted(items, key=key)
