"""Third-party-style plugins used by the tests; none of them is part of Glia.

``ratings`` shows everything a plugin can add without touching core; ``faulty`` raises in its
hooks to prove isolation; ``stamp`` overrides render_pdf; ``broken_import`` and
``unknown_hook`` must stop startup.
"""
from __future__ import annotations

BUILTIN = [("billing", "plugins.billing"), ("consent", "plugins.consent"), ("coordination", "plugins.coordination")]
RATINGS = ("ratings", "tests.example_plugins.ratings")
FAULTY = ("faulty", "tests.example_plugins.faulty")
STAMP = ("stamp", "tests.example_plugins.stamp")
WITH_EXAMPLES = BUILTIN + [RATINGS, FAULTY]


def migrate(url: str, plugins) -> None:
    """Bring the test database (core and built-ins already at head) to head for ``plugins``."""
    from core import create_app
    from core import migrate as migrations

    app = create_app({"GLIA_ENV": "testing", "GLIA_DATABASE_URL": url, "SECRET_KEY": "t" * 40},
                     plugins=plugins, check_schema=False)
    ext = app.extensions["glia"]
    with app.app_context():
        migrations.upgrade(ext)
    ext.engine.dispose()


def fresh(db) -> None:
    """Give the test's read session a new snapshot, to see what the app under test committed."""
    db.rollback()
