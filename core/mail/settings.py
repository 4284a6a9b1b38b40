"""Mail settings, read from the app's config or the environment (GLIA_SMTP_URL and friends).

GLIA_SMTP_URL is smtp://[user:password@]host[:port], with ?starttls to upgrade the connection, or
smtps:// for TLS from the start. Without it, messages are kept in the outbox page instead.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from email.utils import formataddr, parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

from flask import Flask, current_app

from core.config import ConfigError

DEFAULT_FROM = "no-reply@localhost"
DEFAULT_RETRIES = "60,300,1800,7200"  # seconds before the 2nd, 3rd, ... attempt; then failed


class MailConfigError(ConfigError):
    """GLIA_SMTP_URL cannot be understood."""


def _get(app: Flask | None, name: str, default: str = "") -> str:
    app = app or current_app
    value = app.config.get(name)
    return str(value) if value is not None else os.environ.get(name, default)


@dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    tls: bool = False       # smtps: TLS from the first byte
    starttls: bool = False  # smtp with ?starttls
    user: str = ""
    password: str = ""


def smtp(app: Flask | None = None) -> Smtp | None:
    """The SMTP server to send through, or None (the outbox keeps messages)."""
    raw = _get(app, "GLIA_SMTP_URL").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise MailConfigError("GLIA_SMTP_URL must look like smtp://[user:password@]host:port "
                              "(or smtps://..., or smtp://...?starttls)")
    try:
        port = parts.port
    except ValueError:
        raise MailConfigError("GLIA_SMTP_URL has a port that is not a number") from None
    tls = parts.scheme == "smtps"
    return Smtp(parts.hostname, port or (465 if tls else 25), tls=tls, starttls="starttls" in parse_qs(
        parts.query, keep_blank_values=True), user=unquote(parts.username or ""), password=unquote(parts.password or ""))


def sender(clinic_name: str, app: Flask | None = None) -> str:
    """The From header: the clinic's name over GLIA_MAIL_FROM's address (or its own display name)."""
    name, address = parseaddr(_get(app, "GLIA_MAIL_FROM", DEFAULT_FROM))
    return formataddr((name or clinic_name, address or DEFAULT_FROM))


def retry_intervals(app: Flask | None = None) -> list[int]:
    """Seconds to wait before each retry (GLIA_MAIL_RETRY_INTERVALS); attempts = retries + 1."""
    raw = _get(app, "GLIA_MAIL_RETRY_INTERVALS", DEFAULT_RETRIES)
    try:
        found = [int(n) for n in raw.split(",") if n.strip()]
    except ValueError:
        found = [-1]
    if any(n < 0 for n in found):
        raise MailConfigError(f"GLIA_MAIL_RETRY_INTERVALS must be seconds separated by commas (got {raw!r})")
    return found


def base_url(app: Flask | None = None) -> str:
    """Where links in messages point: GLIA_BASE_URL, else (None) the request's own address."""
    return _get(app, "GLIA_BASE_URL").rstrip("/") or None


def check(app: Flask) -> None:
    """At startup: a GLIA_SMTP_URL or retry list that cannot be read stops the app, not its first e-mail."""
    smtp(app)
    retry_intervals(app)
