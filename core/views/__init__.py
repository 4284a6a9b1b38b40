"""Core blueprints."""
from flask import Flask


def register(app: Flask) -> None:
    import core.portal as portal
    from core.outcomes import views as outcomes
    from core.portal import staff as portal_staff
    from core.scheduling import day, views as planning
    from core.views import admin, auth, dashboard, jobs, nav, patients, rems, safety, sessions, settings

    for module in (auth, dashboard, patients, sessions, settings, safety, admin, portal, rems, jobs, planning, day, outcomes):
        app.register_blueprint(module.bp)
    app.register_blueprint(portal.staff_bp)
    app.extensions["glia"].pm.register(nav, name="core.nav")
    app.extensions["glia"].pm.register(portal_staff, name="core.portal")
