"""Helpers for the security tests: database snapshots, audit counts and the route inventory."""
from __future__ import annotations

import hashlib

from sqlalchemy import inspect, text
from werkzeug.routing import IntegerConverter

from core.auth import access_of

SKIP_TABLES = {"audit_event", "audit_seal", "user_session"}  # audit rows, their seals and session bookkeeping may grow


def engine_of(app):
    return app.extensions["glia"].engine


def tables(app) -> list[str]:
    names = inspect(engine_of(app)).get_table_names()
    return sorted(n for n in names if not n.startswith("alembic_version"))


def scalar(app, sql: str, **params):
    with engine_of(app).connect() as conn:
        return conn.execute(text(sql), params).scalar()


def audit_count(app) -> int:
    return scalar(app, "SELECT count(*) FROM audit_event")


def snapshot(app, skip=SKIP_TABLES) -> dict[str, str]:
    """A digest of every row of every table (but ``skip``): any insert, update or delete shows."""
    out = {}
    with engine_of(app).connect() as conn:
        for name in tables(app):
            if name in skip:
                continue
            rows = conn.execute(text(f'SELECT * FROM "{name}"')).all()  # noqa: S608 - names from the schema
            out[name] = hashlib.sha256("\n".join(sorted(map(repr, rows))).encode()).hexdigest()
    return out


def changed(before: dict, after: dict) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def rules(app):
    """Every URL rule but static files, with a concrete URL (ints become 1, other parts 'x')."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        values = {name: 1 if isinstance(conv, IntegerConverter) else "x"
                  for name, conv in rule._converters.items()}
        yield rule, rule.build(values, append_unknown=False)[1]


def declared(app, rule):
    return access_of(app.view_functions[rule.endpoint])


def plugin_of(app, rule) -> str | None:
    blueprint = rule.endpoint.rpartition(".")[0]
    return app.extensions["glia"].blueprint_owner.get(blueprint)
