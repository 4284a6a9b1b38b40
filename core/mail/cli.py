"""`glia mail send` (attempt what is due) and `glia mail reminders` (tomorrow's reminders and the
questionnaires now due, once each)."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlmodel import select

from core.db import session_scope
from core.mail import sending, settings
from core.mail.models import MailStatus
from core.mail.reminders import send_questionnaires_due, send_reminders
from core.models import Clinic


def _app():
    app = current_app._get_current_object()
    try:
        settings.smtp(app)
        settings.retry_intervals(app)
    except settings.MailConfigError as exc:
        raise click.ClickException(str(exc)) from None
    return app


@click.group("mail")
def mail_group():
    """Patient e-mail: send what is queued, send tomorrow's reminders and questionnaires due."""


@mail_group.command("send")
@click.option("--now", "now_too", is_flag=True, help="Also retry messages still waiting out their backoff.")
@with_appcontext
def send_command(now_too: bool):
    """Attempt every queued message that is due (safe from cron; each message is sent once)."""
    app = _app()
    if settings.smtp(app) is None:
        click.echo("GLIA_SMTP_URL is not set: messages stay in the outbox page; nothing to send.")
        return
    counts = sending.flush(app, now_too=now_too)
    click.echo(f"sent {counts.get('sent', 0)}, waiting to retry {counts.get('queued', 0)}, "
               f"failed {counts.get('failed', 0)}")


@mail_group.command("reminders")
@click.option("--clinic", "slug", default=None, help="One clinic's slug (default: every clinic).")
@with_appcontext
def reminders_command(slug: str | None):
    """Remind each patient with a session tomorrow (clinic time) and ask portal patients for the
    questionnaires their next session wants; running it twice sends nothing twice."""
    app = _app()
    engine = app.extensions["glia"].engine
    made = []
    with session_scope(engine) as db:
        query = select(Clinic).order_by(Clinic.slug)
        clinics = db.exec(query.where(Clinic.slug == slug) if slug else query).all()
        if slug and not clinics:
            raise click.ClickException(f"no clinic with slug {slug!r}")
        for clinic in clinics:
            found = send_reminders(db, clinic)
            asked = send_questionnaires_due(db, clinic)
            made += [(m.id, m.status) for m in found + asked]
            click.echo(f"{clinic.slug}: {len(found)} reminders, {len(asked)} questionnaires due")
    queued = [mid for mid, status in made if status == MailStatus.queued]
    if queued:
        sending.dispatch(app, queued)
