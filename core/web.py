"""Wires the web layer: auth, CSRF, rate limits, headers, errors, the plugin 404 guard."""
from __future__ import annotations

import io
import logging
import secrets
import traceback
from pathlib import Path

from flask import Flask, current_app, g, make_response, render_template, request, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import current_user
from flask_wtf import CSRFProtect
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError, NotFound
from werkzeug.middleware.proxy_fix import ProxyFix

from core import audit, audit_chain, auth, db, hooks, tablet
from core import safe_logging
from core.config import show_errors
from core.slots import NavItem

csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])
log = logging.getLogger("glia")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


def init_app(app: Flask) -> None:
    safe_logging.install()
    # the audit key, or (in production, without one) no start at all, as for the secret key
    app.extensions["glia_audit_key"] = audit_chain.load_key(app.config["GLIA_ENV"], Path(app.instance_path))
    app.wsgi_app = BoundedBody(app.wsgi_app, app.config["MAX_CONTENT_LENGTH"])
    hops = app.config["GLIA_PROXY_HOPS"]
    if hops:  # only then is X-Forwarded-For the client (throttling and audit use its address)
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
    auth.login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)

    from core.views import register

    register(app)

    # order matters: the guard 404s only signed-in users, so an anonymous request to any
    # plugin route (enabled or not) reaches enforce_access and is sent to the login page
    app.before_request(db.begin_request)  # first: whether this request only reads
    app.before_request(_guard_disabled_plugin)
    app.before_request(auth.enforce_access)
    app.after_request(_finish)
    app.teardown_appcontext(db.close_request_session)
    app.context_processor(_template_context)
    _register_filters(app)
    for code in (400, 403, 404, 405, 409, 413, 422, 429):
        app.register_error_handler(code, _http_error)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(Exception, _unexpected_error)


class BoundedBody:
    """A chunked body (its length unknown until read) is read up to the limit here, so an oversized one is
    refused with 413 like any other; Werkzeug would cut it silently and parse what fits."""

    def __init__(self, wsgi_app, limit: int):
        self.wsgi_app, self.limit = wsgi_app, limit

    def __call__(self, environ, start_response):
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            body = environ["wsgi.input"].read(self.limit + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))  # over the limit: Flask answers 413, reading nothing
            environ.pop("wsgi.input_terminated", None)
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.wsgi_app(environ, start_response)


def _guard_disabled_plugin():
    """A disabled plugin's routes answer 404 for that clinic, as if they did not exist."""
    bp = request.blueprint
    owner = current_app.extensions["glia"].blueprint_owner.get(bp or "")
    if owner is None:
        return
    # current_user loads the session (and g.clinic) before we look at the clinic
    if current_user.is_authenticated and owner not in hooks.enabled_plugins(g.get("clinic")):
        raise NotFound()


def _finish(response):
    """Commit the request's work before the response leaves; then headers.

    A failing commit (locked or full disk, lost connection) must not leave a success page
    behind: everything is rolled back and the user gets the generic error page.
    """
    try:
        committed = db.finish_request_session(commit=response.status_code < 400)
        audit.flush_denied(current_app.extensions["glia"].engine)
        if committed:
            for event, kwargs in g.pop("after_commit", []):
                hooks.relay(kwargs["clinic"]).fire(event, **kwargs)
            if g.get("db") is not None:
                g.db.commit()
            _run_post_commit()
    except Exception as err:  # noqa: BLE001 - any failure here means nothing may be reported as done
        g.pop("after_commit", None)
        g.pop("post_commit", None)
        response = _failure_page(err)
    g.pop("post_commit", None)  # a rolled-back request sends nothing
    return _security_headers(response)


def after_commit(event: str, **kwargs) -> None:
    """Queue an event hook to run once this request's transaction has committed."""
    g.setdefault("after_commit", []).append((event, kwargs))


def post_commit(callback) -> None:
    """Run ``callback()`` once this request's work (and its events' work) has committed: for what
    must not happen unless the change is kept, such as sending the e-mail it queued."""
    g.setdefault("post_commit", []).append(callback)


def _run_post_commit() -> None:
    """The change is committed whatever a callback does: a failure is logged (type only), not shown."""
    for callback in g.pop("post_commit", []):
        try:
            callback()
        except Exception as err:  # noqa: BLE001 - what it was sending stays queued for a retry
            log.error("post-commit callback failed: %s in %s", type(err).__name__, request.endpoint)


def _security_headers(response):
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h["X-Content-Type-Options"] = "nosniff"
    h["Referrer-Policy"] = "same-origin"
    h["X-Frame-Options"] = "DENY"
    if current_app.config["GLIA_ENV"] == "production":
        h["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    if request.endpoint != "static":  # pages and documents may hold PHI: never cached anywhere
        h["Cache-Control"] = "no-store"
    return response


def _template_context():
    """The page frame's values, computed once per request however many fragments it renders
    (plugin panels and widgets are templates too); recomputed only if the user or clinic changes."""
    if g.get("failed"):  # the 500 page: do not touch a database that may be failing
        return {"current_clinic": None, "nav": [], "user_clinics": [], "tablet_locked": False}
    # outside a request (PDFs rendered by the CLI or the demo seed) there is no user at all
    user = current_user if current_user and current_user.is_authenticated else None
    clinic = g.get("clinic")
    locked = user is not None and tablet.locked_patient() is not None
    key = (user.id if user else None, clinic.id if clinic else None, locked)
    cached = g.get("_page_frame")
    if cached is not None and cached[0] == key:
        return cached[1]
    nav: list[NavItem] = []
    if user is not None and user.is_staff and not locked:
        items, _errors = hooks.relay(clinic).collect("nav_items", expect=NavItem, clinic=clinic, user=user)
        nav = [i for i in hooks.ordered(items) if user.role.value in i.roles]
    frame = {"current_clinic": clinic, "nav": nav, "tablet_locked": locked,
             "user_clinics": auth.clinics_of(user) if user and user.is_staff and not locked else []}
    g._page_frame = (key, frame)
    return frame


def _register_filters(app: Flask) -> None:
    from core import formatting

    app.jinja_env.filters.update(formatting.FILTERS)
    app.jinja_env.globals["tablet_pin_usable"] = tablet.pin_usable  # the lock screen's PIN form


def _http_error(err: HTTPException):
    return render_template("error.html", code=err.code, title=err.name,
                           message=err.description if err.code in (400, 409, 413, 422, 429) else ""), err.code


def _csrf_error(err: CSRFError):
    return render_template("error.html", code=400, title="Form expired",
                           message="This form expired or was sent from elsewhere. Go back, reload and try again."), 400


def _unexpected_error(err: Exception):
    if isinstance(err, InternalServerError) and err.original_exception is not None:
        return _failure_page(err.original_exception)
    if isinstance(err, HTTPException) and err.code != 500:
        return _http_error(err)
    return _failure_page(err)


def _failure_page(err: BaseException):
    """Roll back, log without PHI, and answer the generic 500 page with a reference id only."""
    ref = secrets.token_hex(4)
    # the exception text may hold submitted values: log the type and where, not the message
    log.error("unhandled %s in %s [ref %s]\n%s", type(err).__name__, request.endpoint, ref,
              "".join(traceback.format_tb(err.__traceback__)))
    s = g.get("db")
    if s is not None:
        try:
            s.rollback()
        except Exception:  # noqa: BLE001 - a dead connection is closed at teardown
            log.error("rollback failed too [ref %s]", ref)
    g.failed = True
    session.pop("_flashes", None)  # a "saved" notice queued by the view would now be a lie
    message = f"The error has been logged with reference {ref}."
    # a developer's own machine may see what failed; production never does (core.config)
    detail = "".join(traceback.format_exception(err)) if show_errors(current_app) else ""
    try:
        body = render_template("error.html", code=500, title="Something went wrong", message=message, ref=ref,
                               detail=detail)
    except Exception:  # noqa: BLE001 - the page itself needed the failing database
        body = f"<!doctype html><title>Something went wrong</title><h1>Something went wrong</h1><p>{message}</p>"
    return make_response(body, 500)
