"""Builds the plugin manager: which plugins are installed, which are loaded."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType

import pluggy

from core import hookspecs

GROUP = "glia"


class PluginLoadError(RuntimeError):
    """A plugin could not be loaded; startup stops rather than run without, say, a consent gate."""


@dataclass
class PluginInfo:
    name: str
    module: ModuleType
    version: str = ""
    description: str = ""
    hooks: list[str] = field(default_factory=list)


def installed() -> list[tuple[str, object]]:
    """(name, entry point) for every plugin in the "glia" group, sorted by name."""
    return sorted(((ep.name, ep) for ep in entry_points(group=GROUP)), key=lambda p: p[0])


def _describe(module: ModuleType) -> str:
    doc = (module.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def build_manager(plugins=None, blocked=()) -> tuple[pluggy.PluginManager, dict[str, PluginInfo], list[str]]:
    """Load plugins; ``plugins`` is an explicit [(name, module or dotted path)] list for tests.

    Returns the manager, the loaded plugins by name, and the names that were blocked.
    """
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    from core import pdf  # core's own behaviour is a plugin too: the default PDF renderer

    pm.register(pdf, name="core.pdf")
    from core import rems  # the Spravato REMS gate and forms: core's, so no clinic can switch it off

    pm.register(rems, name="core.rems")

    if plugins is None:
        candidates = [(name, ep) for name, ep in installed()]
    else:
        candidates = sorted(plugins, key=lambda p: p[0])
    loaded: dict[str, PluginInfo] = {}
    skipped: list[str] = []
    for name, source in candidates:
        if name in blocked:
            skipped.append(name)
            continue
        version = ""
        try:
            if isinstance(source, ModuleType):
                module = source
            elif isinstance(source, str):
                module = importlib.import_module(source)
            else:  # an entry point
                module = source.load()
                version = source.dist.version if source.dist else ""
        except Exception as exc:  # noqa: BLE001 - any import failure must name the plugin
            raise PluginLoadError(f"plugin {name!r} failed to import: {type(exc).__name__}: {exc}") from exc
        try:
            pm.register(module, name=name)
            pm.check_pending()
        except (pluggy.PluginValidationError, ValueError) as exc:  # ValueError: registered twice
            raise PluginLoadError(f"plugin {name!r} is invalid: {exc}") from exc
        hooks = sorted(h.name for h in pm.get_hookcallers(module) or [])
        loaded[name] = PluginInfo(name, module, version or getattr(module, "__version__", ""),
                                  _describe(module), hooks)
    return pm, loaded, skipped
