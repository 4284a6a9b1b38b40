"""`glia plugins new NAME`: write a plugin project that installs, migrates and passes its own tests.

The files are package data (core/data/plugin_template/); ``$name`` and ``$title`` in them and
``__name__`` in their paths become the plugin's name, so the scaffold stays readable as files.
"""
from __future__ import annotations

import keyword
import pkgutil
import re
import sys
from pathlib import Path
from string import Template

TEMPLATE_DIR = Path(__file__).resolve().parent / "data" / "plugin_template"
SUFFIX = ".tmpl"
NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
RESERVED = {"core", "plugins", "glia", "tests", "test"}


class ScaffoldError(ValueError):
    pass


def builtin_names() -> set[str]:
    """The plugins shipped inside glia (packages of ``plugins``)."""
    import plugins

    return {m.name for m in pkgutil.iter_modules(plugins.__path__)}


def name_problem(name: str) -> str | None:
    if not NAME_RE.fullmatch(name):
        return (f"{name!r} is not a valid plugin name: use lowercase letters, digits and underscores, "
                "starting with a letter (it names a Python package, tables and URLs).")
    if keyword.iskeyword(name):
        return f"{name!r} is a Python keyword; choose another name."
    if name in builtin_names():
        return f"{name!r} is a built-in Glia plugin; choose another name."
    if name in RESERVED or name in sys.stdlib_module_names:
        return f"{name!r} would shadow the {name!r} module; choose another name."
    return None


def new_plugin(name: str, dest: Path) -> list[Path]:
    """Write the project for plugin ``name`` into ``dest`` (absent or empty); returns the files."""
    if problem := name_problem(name):
        raise ScaffoldError(problem)
    if dest.exists() and any(dest.iterdir()):
        raise ScaffoldError(f"{dest} is not empty; nothing was written.")
    values = {"name": name, "title": name.replace("_", " ").capitalize()}
    written = []
    for src in sorted(TEMPLATE_DIR.rglob("*" + SUFFIX)):
        rel = src.relative_to(TEMPLATE_DIR).as_posix().replace("__name__", name)[: -len(SUFFIX)]
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(Template(src.read_text(encoding="utf-8")).substitute(values), encoding="utf-8")
        written.append(target)
    return written
