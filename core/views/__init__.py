"""Core blueprints."""
from flask import Flask


def register(app: Flask) -> None:
    from core.outcomes import views as outcomes
    from core.scheduling import day, views as planning
    from core.views import admin, auth, dashboard, jobs, nav, patients, portal, rems, safety, sessions, settings

    for module in (auth, dashboard, patients, sessions, settings, safety, admin, portal, rems, jobs, planning, day, outcomes):
        app.register_blueprint(module.bp)
    app.extensions["glia"].pm.register(nav, name="core.nav")
