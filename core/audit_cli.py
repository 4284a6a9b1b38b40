"""`glia audit seal | checkpoint | verify`: the operator's side of the keyed audit chain."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from core import audit_chain


@click.group("audit")
def audit_group():
    """The tamper-evident audit log."""


def _engine_and_key():
    return current_app.extensions["glia"].engine, current_app.extensions["glia_audit_key"]


def _snapshot(engine):
    """A read-only connection that sees one consistent state while the app keeps writing."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(sqlite_begin="DEFERRED").connect()
    return engine.connect().execution_options(isolation_level="REPEATABLE READ")


@audit_group.command("seal")
@with_appcontext
def audit_seal():
    """Seal every committed audit row not yet in the chain (safe to run from cron)."""
    engine, key = _engine_and_key()
    click.echo(f"sealed {audit_chain.seal_all(engine, key)} audit entries")


@audit_group.command("checkpoint")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the checkpoint to this file instead of standard output.")
@with_appcontext
def audit_checkpoint(output: Path | None):
    """Seal, then print the chain's signed head: keep it away from this database and server."""
    engine, key = _engine_and_key()
    audit_chain.seal_all(engine, key)
    with _snapshot(engine) as conn:
        position, head = audit_chain.head(conn)
    text = audit_chain.Checkpoint.of_head(key, position, head).dumps() + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"checkpoint at position {position} written to {output}", err=True)


@audit_group.command("verify")
@click.option("--checkpoint", "checkpoint_file", type=click.File("r"),
              help="A checkpoint from `glia audit checkpoint`: also detects entries deleted at the end.")
@with_appcontext
def audit_verify(checkpoint_file):
    """Seal what is pending, then check every entry; names the first bad one."""
    engine, key = _engine_and_key()
    checkpoint = None
    if checkpoint_file is not None:
        try:
            checkpoint = audit_chain.Checkpoint.load(checkpoint_file.read())
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--checkpoint") from None
    audit_chain.seal_all(engine, key)
    with _snapshot(engine) as conn:
        report = audit_chain.verify(conn, key, checkpoint)
    if report.problem:
        where = f"entry {report.bad_entry}" if report.bad_entry is not None else "the end"
        click.echo(f"audit chain broken at {where}: {report.problem}", err=True)
        sys.exit(1)
    pending = f", {report.unsealed} committed since and not yet sealed" if report.unsealed else ""
    against = f", matches the checkpoint at position {checkpoint.position}" if checkpoint else ""
    click.echo(f"audit chain intact: {report.sealed} entries sealed through position {report.head[0]}"
               f"{pending}{against}")
