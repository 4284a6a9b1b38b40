"""Configuration from GLIA_* environment variables, with safe production defaults."""
from __future__ import annotations

import os
import secrets
from datetime import timedelta

from flask import Flask

KNOWN_BAD_SECRETS = {"", "dev", "change-me", "changeme", "secret", "glia", "development"}


class ConfigError(RuntimeError):
    """The deployment is configured unsafely; startup stops."""


def load(app: Flask, overrides: dict) -> None:
    env = overrides.get("GLIA_ENV") or os.environ.get("GLIA_ENV", "production")
    prod = env == "production"
    secret = overrides.get("SECRET_KEY") or os.environ.get("GLIA_SECRET_KEY", "")
    app.config.update(
        GLIA_ENV=env,
        GLIA_DATABASE_URL=os.environ.get("GLIA_DATABASE_URL"),
        GLIA_BLOCKED_PLUGINS=os.environ.get("GLIA_BLOCKED_PLUGINS", ""),
        GLIA_IDLE_MINUTES=int(os.environ.get("GLIA_IDLE_MINUTES", "15")),
        GLIA_ABSOLUTE_HOURS=int(os.environ.get("GLIA_ABSOLUTE_HOURS", "12")),
        GLIA_LOGIN_RATE=os.environ.get("GLIA_LOGIN_RATE", "30 per 5 minutes"),
        # reverse proxies in front of the app whose X-Forwarded-For/-Proto we believe (0: none)
        GLIA_PROXY_HOPS=int(os.environ.get("GLIA_PROXY_HOPS", "0")),
        SECRET_KEY=secret or secrets.token_hex(32),  # a CLI command that serves nothing needs none
        GLIA_SECRET_KEY_GENERATED=not secret,
        # seals TOTP secrets at rest (core.mfa); without it, derived from GLIA_SECRET_KEY
        GLIA_MFA_KEY=os.environ.get("GLIA_MFA_KEY", ""),
        SESSION_COOKIE_NAME="__Host-glia" if prod else "glia_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=prod,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        MAX_FORM_MEMORY_SIZE=512 * 1024,
        MAX_FORM_PARTS=1000,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the (server-ended) session
        # several workers or hosts share one Redis for login throttling and the job queue;
        # unreachable, sign-in answers 503 instead of going unthrottled (core.queue)
        GLIA_REDIS_URL=os.environ.get("GLIA_REDIS_URL", ""),
        # seconds before each retry of a failed job (one number per retry)
        GLIA_JOB_RETRY_INTERVALS=os.environ.get("GLIA_JOB_RETRY_INTERVALS", "5,30,120"),
        RATELIMIT_STORAGE_URI=os.environ.get("GLIA_REDIS_URL") or "memory://",
        RATELIMIT_STORAGE_OPTIONS={"socket_connect_timeout": 2, "socket_timeout": 2},
        RATELIMIT_SWALLOW_ERRORS=False,
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=False,
        RATELIMIT_HEADERS_ENABLED=False,
        TEMPLATES_AUTO_RELOAD=not prod,
        # exception text on the error page and on a plugin's failed part: on by default in
        # development, refused in production (the text may hold patient data)
        GLIA_SHOW_ERRORS=flag("GLIA_SHOW_ERRORS", default=env == "development"),
    )
    app.config.update(overrides)
    app.config["GLIA_JOB_RETRY_INTERVALS"] = retry_intervals(app.config["GLIA_JOB_RETRY_INTERVALS"])
    if "GLIA_REDIS_URL" in overrides and "RATELIMIT_STORAGE_URI" not in overrides:
        app.config["RATELIMIT_STORAGE_URI"] = overrides["GLIA_REDIS_URL"] or "memory://"
    if app.config["GLIA_ENV"] != "production":
        return
    # debug is refused for CLI runs too: `glia run --debug` would expose the Werkzeug debugger
    if app.debug or app.config.get("DEBUG"):
        raise ConfigError("refusing to start: debug mode is on in production")
    if app.config["GLIA_SHOW_ERRORS"]:
        raise ConfigError("refusing to start: GLIA_SHOW_ERRORS is for development only (exception text "
                          "may hold patient data); unset it in production")
    if not app.config.get("GLIA_CLI"):  # the WSGI app gunicorn serves
        require_serving_secret(app)


def flag(name: str, *, default: bool) -> bool:
    """An on/off environment variable: 1/true/yes/on or 0/false/no/off; unset or empty keeps the default."""
    raw = os.environ.get(name, "")
    value = raw.strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be on or off (1/0, true/false), not {raw!r}")


def show_errors(app: Flask) -> bool:
    """Whether pages may show exception text: GLIA_SHOW_ERRORS, and never in production."""
    return bool(app.config.get("GLIA_SHOW_ERRORS")) and app.config["GLIA_ENV"] != "production"


def retry_intervals(raw) -> list[int]:
    """"5,30,120" -> [5, 30, 120]: seconds before each retry of a failed job."""
    try:
        found = [int(n) for n in (raw.split(",") if isinstance(raw, str) else raw) if str(n).strip()]
    except ValueError:
        found = [-1]
    if any(n < 0 for n in found):
        raise ConfigError(f"GLIA_JOB_RETRY_INTERVALS must be seconds separated by commas, like 5,30,120 (got {raw!r})")
    return found


def weak_secret(secret: str) -> bool:
    return secret.strip().lower() in KNOWN_BAD_SECRETS or len(secret) < 32 or len(set(secret)) < 8


def require_serving_secret(app: Flask) -> None:
    """An app about to serve in production signs session cookies with SECRET_KEY: refuse a
    weak one, or none (a CLI app's generated key would change at each start). Called at
    startup for the WSGI app and by every command that serves (`glia run`, `glia demo`)."""
    if app.config["GLIA_ENV"] != "production":
        return
    if app.config["GLIA_SECRET_KEY_GENERATED"] or weak_secret(app.config["SECRET_KEY"]):
        raise ConfigError(
            "refusing to start: set GLIA_SECRET_KEY to a random value of 32+ characters "
            "(python -c 'import secrets; print(secrets.token_hex(32))')"
        )
