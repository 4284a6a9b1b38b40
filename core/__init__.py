"""Glia core: the app factory."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask

from core import search  # noqa: F401 - its ORM listener keeps the patient search terms with every write
from core.hookspecs import hookimpl  # noqa: F401 - plugins import it from here

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("glia")


@dataclass
class Glia:
    """What the app knows about its database and plugins (``app.extensions["glia"]``)."""

    engine: object
    pm: object
    plugins: dict
    blocked: list
    blueprint_owner: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)  # plugin -> {key: Setting}
    models: dict = field(default_factory=dict)  # plugin -> the table classes its register_models returned
    document_types: list = field(default_factory=list)


def create_app(config: dict | None = None, *, plugins=None, check_schema: bool = True) -> Flask:
    """Build the app.

    ``plugins`` is an explicit [(name, module)] list (tests); None loads the "glia" entry points.
    ``check_schema`` refuses to start on a database that is missing or behind its migrations.
    """
    from core import config as cfg
    from core.db import database_url, make_engine
    from core.plugins import build_manager

    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"),
                instance_path=str(Path.cwd() / "instance"))
    cfg.load(app, config or {})

    blocked = [n.strip() for n in app.config["GLIA_BLOCKED_PLUGINS"].split(",") if n.strip()]
    pm, loaded, skipped = build_manager(plugins, blocked)
    engine = make_engine(database_url(app.config.get("GLIA_DATABASE_URL")))
    ext = Glia(engine=engine, pm=pm, plugins=loaded, blocked=skipped)
    app.extensions["glia"] = ext

    _collect_startup_hooks(app, ext)
    if check_schema:
        from core.migrate import require_current_schema

        require_current_schema(engine, ext)

    from core import mail, queue, web

    web.init_app(app)
    queue.init_app(app)
    mail.init_app(app)
    _register_plugin_blueprints(app, ext)
    return app


def _startup_calls(ext: Glia, hook: str, **kwargs):
    """(plugin name, result) for each loaded plugin implementing a startup hook, in name order."""
    from core.plugins import PluginLoadError

    impls = getattr(ext.pm.hook, hook).get_hookimpls()
    for impl in sorted(impls, key=lambda i: i.plugin_name):
        if impl.plugin_name not in ext.plugins:
            continue
        try:
            result = impl.function(*[kwargs[a] for a in impl.argnames])
        except Exception as exc:  # noqa: BLE001 - a broken plugin must be named, not guessed at
            raise PluginLoadError(f"plugin {impl.plugin_name!r} failed in {hook}: "
                                  f"{type(exc).__name__}: {exc}") from exc
        yield impl.plugin_name, result


def _collect_startup_hooks(app: Flask, ext: Glia) -> None:
    for name, models in _startup_calls(ext, "register_models"):
        ext.models[name] = list(models or [])  # importing them registered their tables; startup checks they exist
    for name, settings in _startup_calls(ext, "register_settings"):
        ext.settings[name] = {s.key: s for s in settings or []}
    for _name, types in _startup_calls(ext, "register_document_types"):
        ext.document_types.extend(types or [])


def _register_plugin_blueprints(app: Flask, ext: Glia) -> None:
    """Each plugin registers its blueprints; we note which blueprint is whose (for the 404 guard)."""
    for name, info in ext.plugins.items():
        before = set(app.blueprints)
        for _ in _startup_calls(Glia(ext.engine, ext.pm, {name: info}, []), "register_blueprints", app=app):
            pass
        for bp in set(app.blueprints) - before:
            ext.blueprint_owner[bp] = name

