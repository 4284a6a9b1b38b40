"""Builds the plugin manager: which plugins are installed, which are loaded.

A plugin that cannot be loaded stops startup with a PluginLoadError naming it and the cause:
the file and line where its import failed, the contract range it requires (``GLIA_CONTRACT``)
against the one this Glia offers (``core.hookspecs.CONTRACT_VERSION``), a hook core does not declare.
"""
from __future__ import annotations

import importlib
import importlib.util
import traceback
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet

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
    default_enabled: bool = True  # GLIA_DEFAULT_ENABLED: off where a clinic never switched it on


def installed() -> list[tuple[str, object]]:
    """(name, entry point) for every plugin in the "glia" group, sorted by name."""
    return sorted(((ep.name, ep) for ep in entry_points(group=GROUP)), key=lambda p: p[0])


def _describe(module: ModuleType) -> str:
    doc = (module.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def _roots(module_name: str) -> list[Path]:
    """The folders of the plugin's top-level package (or its single file), found without importing it."""
    try:
        spec = importlib.util.find_spec(module_name.split(".")[0])
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return [Path(p).resolve() for p in spec.submodule_search_locations]
    return [Path(spec.origin).resolve()] if spec.origin else []


def import_site(exc: BaseException, module_name: str) -> str:
    """Where an import failed: the deepest line in the plugin's own files ("" if none ran, say it is
    not installed). A failure inside a library it imports is named at the plugin's line that imported it."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}, line {exc.lineno}"
    roots = _roots(module_name)
    own = [f for f in traceback.extract_tb(exc.__traceback__)
           if not f.filename.startswith("<") and any(Path(f.filename).resolve().is_relative_to(r) for r in roots)]
    return f"{own[-1].filename}, line {own[-1].lineno}" if own else ""


def check_declarations(name: str, module: ModuleType) -> None:
    """Refuse a plugin whose GLIA_CONTRACT range leaves out the contract this Glia offers, or whose
    GLIA_DEFAULT_ENABLED is not a bool."""
    default = getattr(module, "GLIA_DEFAULT_ENABLED", True)
    if not isinstance(default, bool):
        raise PluginLoadError(f"plugin {name!r}: GLIA_DEFAULT_ENABLED must be True or False, not {default!r}")
    wanted = getattr(module, "GLIA_CONTRACT", None)
    if wanted is None:
        return
    try:
        spec = SpecifierSet(str(wanted))
    except InvalidSpecifier:
        raise PluginLoadError(f"plugin {name!r} declares GLIA_CONTRACT = {wanted!r}, which is not a version "
                              f'range such as ">=1.0,<2"') from None
    offered = hookspecs.CONTRACT_VERSION
    if not spec.contains(offered, prereleases=True):
        raise PluginLoadError(f"plugin {name!r} requires Glia plugin contract {spec}, but this Glia offers "
                              f"contract {offered}: install a release of the plugin made for contract {offered}")


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
        module_name = source.__name__ if isinstance(source, ModuleType) else (
            source if isinstance(source, str) else source.module)
        try:
            if isinstance(source, ModuleType):
                module = source
            elif isinstance(source, str):
                module = importlib.import_module(source)
            else:  # an entry point
                module = source.load()
                version = source.dist.version if source.dist else ""
        except Exception as exc:  # noqa: BLE001 - any import failure must name the plugin
            where = import_site(exc, module_name)
            raise PluginLoadError(f"plugin {name!r} failed to import{' at ' + where if where else ''}: "
                                  f"{type(exc).__name__}: {exc}") from exc
        check_declarations(name, module)
        try:
            pm.register(module, name=name)
            pm.check_pending()
        except (pluggy.PluginValidationError, ValueError) as exc:  # ValueError: registered twice
            raise PluginLoadError(f"plugin {name!r} is invalid: {exc}") from exc
        hooks = sorted(h.name for h in pm.get_hookcallers(module) or [])
        loaded[name] = PluginInfo(name, module, version or getattr(module, "__version__", ""),
                                  _describe(module), hooks, getattr(module, "GLIA_DEFAULT_ENABLED", True))
    return pm, loaded, skipped
