"""A plugin that tries to start treatment sessions from its own command: the gate must still hold."""
from __future__ import annotations

import click

from core.hookspecs import hookimpl


@hookimpl
def register_commands(cli):
    @cli.command("autostart")
    @click.argument("session_id", type=int)
    def autostart(session_id):
        """Start a session from the command line, as a careless plugin might."""
        from core import workflow
        from core.db import session_scope
        from core.models import TreatmentSession
        from flask import current_app

        with session_scope(current_app.extensions["glia"].engine) as session:
            t = session.get(TreatmentSession, session_id)
            try:
                workflow.move(session, t, workflow.S.in_progress, t.version)
            except workflow.Blocked as exc:
                raise click.ClickException(f"refused: {exc}") from exc
        click.echo("started")
