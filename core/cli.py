"""The ``glia`` command: a Flask CLI group (run, routes and shell come free) plus Glia's own."""
from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import FlaskGroup, ScriptInfo, run_command, with_appcontext
from werkzeug.serving import run_simple
from sqlmodel import select

from core import create_app
from core.config import require_serving_secret
from core.audit_cli import audit_group
from core.commands.worker import jobs_command, worker_command
from core.mail.cli import mail_group
from core.models import Clinic


def _app_for_cli():
    """Shell commands serve no cookies, so they need no secret key; those that serve check it."""
    return create_app({"GLIA_CLI": True})


cli = FlaskGroup(create_app=_app_for_cli, add_version_option=False, help="Glia practice management.")


def _bare_app(**config):
    """An app for commands that build or inspect the schema themselves."""
    try:
        return create_app({"GLIA_CLI": True, **config}, check_schema=False)
    except Exception as exc:  # noqa: BLE001 - startup errors are for the operator, plainly
        raise click.ClickException(str(exc)) from None


def _clinic(session, slug: str) -> Clinic:
    clinic = session.exec(select(Clinic).where(Clinic.slug == slug)).first()
    if clinic is None:
        raise click.ClickException(f"no clinic with slug {slug!r}")
    return clinic


# -- demo and init -----------------------------------------------------------------------

def _demo_secret() -> str:
    path = Path("instance") / "secret_key"
    path.parent.mkdir(exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _demo_mode() -> dict:
    """Demo mode (development, a generated key kept in instance/) unless the operator asked for
    production, which then needs its own GLIA_SECRET_KEY like any production server."""
    if os.environ.get("GLIA_ENV") == "production":
        return {"GLIA_ENV": "production"}
    return {"GLIA_ENV": "development", "SECRET_KEY": _demo_secret()}


@cli.command("demo", with_appcontext=False)
@click.option("--no-serve", is_flag=True, help="Only build the demo database.")
@click.option("--port", default=5000, show_default=True)
@click.option("--patients", type=click.IntRange(min=0), default=0,
              help="Grow the Stillwater demo clinic by this many fictional patients (bulk inserts).")
@click.option("--sessions", type=click.IntRange(min=0), default=None,
              help="Treatment sessions to add with them (default: 20 per patient).")
@click.option("--database-url", envvar="GLIA_DATABASE_URL", default=None,
              help="SQLite or PostgreSQL URL (default: GLIA_DATABASE_URL, else instance/glia.db).")
def demo_command(no_serve: bool, port: int, patients: int, sessions: int | None, database_url: str | None):
    """Build (if missing) a demo database of two fictional clinics and serve it on 127.0.0.1.

    With --patients N [--sessions M] the first clinic grows into a large one, for trying
    Glia (or measuring it) at the size of a busy practice; each run adds N more."""
    import time

    from core import demo, demo_bulk, migrate
    from core.db import session_scope

    if sessions and not patients:
        raise click.UsageError("--sessions needs --patients")
    Path("instance").mkdir(exist_ok=True)
    app = _bare_app(**_demo_mode(),
                    **({"GLIA_DATABASE_URL": database_url} if database_url else {}))
    if not no_serve:
        require_serving_secret(app)
    ext = app.extensions["glia"]
    with app.app_context():
        migrate.upgrade(ext)
        with session_scope(ext.engine) as session:
            seeded = demo.seed(session, ext) if demo.is_empty(session) else False
        click.echo("Demo database " + ("created." if seeded else "already present; left as it is."))
        if patients:
            started = time.perf_counter()
            try:
                with session_scope(ext.engine) as session:
                    grown = demo_bulk.grow(session, patients, sessions)
            except ValueError as exc:
                raise click.ClickException(str(exc)) from None
            click.echo(f"Added {grown.patients:,} patients, {grown.sessions:,} sessions and {grown.scores:,} "
                       f"PHQ-9/GAD-7 scores to stillwater in {time.perf_counter() - started:.1f} s.")
    click.echo(demo.logins_text())
    if no_serve:
        return
    click.echo(f"Serving on http://127.0.0.1:{port} (Ctrl-C to stop)")
    run_simple("127.0.0.1", port, app, threaded=True)  # app.run() is a no-op under a Flask CLI group


@cli.command("init", with_appcontext=False)
@click.option("--clinic-name", prompt=True)
@click.option("--slug", prompt=True, help="Short name used on the command line, e.g. stillwater.")
@click.option("--timezone", default="America/New_York", show_default=True, prompt=True)
@click.option("--admin-email", prompt=True)
@click.option("--admin-name", prompt=True)
@click.option("--admin-password", prompt=True, hide_input=True, confirmation_prompt=True)
def init_command(clinic_name, slug, timezone, admin_email, admin_name, admin_password):
    """Create a clinic and its first administrator in a migrated database."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from core import audit
    from core.auth import hash_password, password_problem
    from core.db import session_scope
    from core.models import Membership, Role, User, utcnow

    app = create_app({"GLIA_CLI": True})
    ext = app.extensions["glia"]
    problem = password_problem(admin_password, email=admin_email)
    if problem:
        raise click.ClickException(problem)
    try:
        ZoneInfo(timezone)
    except ZoneInfoNotFoundError:
        raise click.ClickException(f"unknown time zone {timezone!r}") from None
    with app.app_context(), session_scope(ext.engine) as session:
        if session.exec(select(Clinic).where(Clinic.slug == slug)).first():
            raise click.ClickException(f"a clinic with slug {slug!r} exists already")
        clinic = Clinic(slug=slug, name=clinic_name, timezone=timezone, created_at=utcnow())
        session.add(clinic)
        user = session.exec(select(User).where(User.email == admin_email.lower())).first()
        if user is None:
            user = User(email=admin_email.lower(), name=admin_name, role=Role.admin,
                        password_hash=hash_password(admin_password), created_at=utcnow())
            session.add(user)
        session.flush()
        session.add(Membership(user_id=user.id, clinic_id=clinic.id))
        audit.append(session, "clinic.created", object_type="clinic", object_id=clinic.id, clinic_id=clinic.id)
    click.echo(f"Created clinic {slug} with administrator {admin_email}.")


# -- database ----------------------------------------------------------------------------

@cli.group("db")
def db_group():
    """Schema migrations (core and every plugin)."""


@db_group.command("upgrade", with_appcontext=False)
def db_upgrade():
    """Bring the database to the current schema."""
    from core import migrate

    url = os.environ.get("GLIA_DATABASE_URL", "")
    if not url:
        Path("instance").mkdir(exist_ok=True)
    app = _bare_app()
    with app.app_context():
        done = migrate.upgrade(app.extensions["glia"])
    click.echo("Up to date: " + ", ".join(done))


@db_group.command("check", with_appcontext=False)
def db_check():
    """Fail if any model and its migrations disagree."""
    from core import migrate

    app = _bare_app()
    with app.app_context():
        drift = migrate.check(app.extensions["glia"])
    if drift:
        raise click.ClickException("models and migrations disagree:\n" + "\n".join(drift))
    click.echo("Models and migrations agree.")


@db_group.command("revision", with_appcontext=False)
@click.argument("package")
@click.option("-m", "--message", required=True)
def db_revision(package: str, message: str):
    """Autogenerate a migration for PACKAGE (core or a plugin name)."""
    from core import migrate

    app = _bare_app()
    ext = app.extensions["glia"]
    if package not in migrate.packages(ext):
        raise click.ClickException(f"{package!r} has no migrations/versions folder")
    with app.app_context():
        migrate.revision(ext, package, message)


# -- plugins -----------------------------------------------------------------------------

@cli.group("plugins")
def plugins_group():
    """List plugins; enable or disable them per clinic."""


@plugins_group.command("list")
@with_appcontext
def plugins_list():
    """Installed plugins, their hooks, and where each is enabled."""
    from core.db import session_scope
    from core.plugin_state import is_on, states

    ext = current_app.extensions["glia"]
    with session_scope(ext.engine, write=False) as session:
        clinics = session.exec(select(Clinic).order_by(Clinic.slug)).all()
        state = states(session, [c.id for c in clinics])
    for name, info in ext.plugins.items():
        where = ", ".join(
            f"{c.slug}:{'on' if is_on(state.get((c.id, name)), info) else 'off'}"
            for c in clinics)
        click.echo(f"{name} {info.version}  {info.description}")
        click.echo(f"    hooks: {', '.join(info.hooks)}")
        click.echo(f"    clinics: {where or '(none yet)'}")
    for name in ext.blocked:
        click.echo(f"{name}  (blocked by GLIA_BLOCKED_PLUGINS)")


def _toggle(name: str, slug: str, enabled: bool, reason: str = "") -> None:
    from core.db import session_scope
    from core.plugin_state import ReasonRequired, UnknownPlugin, set_enabled

    ext = current_app.extensions["glia"]
    with session_scope(ext.engine) as session:
        clinic = _clinic(session, slug)
        try:
            set_enabled(session, clinic, name, enabled, plugins=ext.plugins, reason=reason)
        except UnknownPlugin:
            raise click.ClickException(f"no loaded plugin named {name!r}") from None
        except ReasonRequired as exc:
            raise click.ClickException(
                f"{name} is a safety gate: sessions at {slug} would start without its checks. {exc} "
                f'Nothing was changed; give the reason with --reason "...".') from None
    click.echo(f"{name} {'enabled' if enabled else 'disabled'} for {slug}.")


@plugins_group.command("enable")
@click.argument("name")
@click.option("--clinic", "slug", required=True)
@with_appcontext
def plugins_enable(name, slug):
    """Enable plugin NAME for a clinic."""
    _toggle(name, slug, True)


@plugins_group.command("disable")
@click.argument("name")
@click.option("--clinic", "slug", required=True)
@click.option("--reason", default="", help="Why (required for a safety gate such as consent; audited, "
                                          "and shown on every session page of the clinic).")
@with_appcontext
def plugins_disable(name, slug, reason):
    """Disable plugin NAME for a clinic (its data stays)."""
    _toggle(name, slug, False, reason)


@plugins_group.command("new", with_appcontext=False)
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the project (default ./glia-NAME); must be absent or empty.")
def plugins_new(name, directory):
    """Start plugin NAME: a project with hooks, a page, a table and its migration, and tests."""
    from core.scaffold import ScaffoldError, new_plugin

    dest = directory or Path.cwd() / f"glia-{name}"
    try:
        new_plugin(name, dest)
    except ScaffoldError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Wrote plugin {name!r} to {dest}.")
    click.echo(f"Next: cd {dest} && pip install -e . && python -m pytest")


# -- run ---------------------------------------------------------------------------------

@click.pass_context
def _run_checked(ctx, **options):
    """Flask's development server, refused in production without a strong secret key."""
    require_serving_secret(ctx.ensure_object(ScriptInfo).load_app())
    return ctx.invoke(run_command.callback, **options)


cli.add_command(click.Command("run", callback=_run_checked, params=run_command.params, help=run_command.help,
                              short_help=run_command.short_help))


# -- users -------------------------------------------------------------------------------

@cli.group("users")
def users_group():
    """Staff accounts."""


@users_group.command("reset-mfa")
@click.argument("email")
@with_appcontext
def users_reset_mfa(email: str):
    """Remove EMAIL's second factor and recovery codes and end their sessions; they enrol again."""
    from sqlalchemy import update

    from core import audit, mfa
    from core.db import session_scope
    from core.models import User, UserSession, utcnow

    with session_scope(current_app.extensions["glia"].engine) as session:
        user = session.exec(select(User).where(User.email == email.strip().lower())).first()
        if user is None:
            raise click.ClickException(f"no user with email {email!r}")
        had = user.mfa_enabled_at is not None
        mfa.remove(session, user)
        ended = session.exec(update(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
                             .values(ended_at=utcnow())).rowcount
        audit.append(session, "auth.mfa_reset", object_type="user", object_id=user.id,
                     detail=f"glia users reset-mfa by {_operator()}; ended {ended} sessions")
    click.echo(f"Second factor removed for {user.email}; they set it up again at their next sign-in."
               if had else f"{email} had no second factor; nothing to remove.")


def _operator() -> str:
    """Who ran the command, as the shell knows them (the audit row has no signed-in user)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# -- audit -------------------------------------------------------------------------------

cli.add_command(audit_group)


# -- the job queue -----------------------------------------------------------------------

cli.add_command(worker_command)
cli.add_command(jobs_command)


# -- patient e-mail ----------------------------------------------------------------------

cli.add_command(mail_group)


def _register_plugin_commands() -> None:
    """Plugins add their commands (e.g. `glia billing superbills`) through register_commands."""
    from core.plugins import PluginLoadError, build_manager

    blocked = [n.strip() for n in os.environ.get("GLIA_BLOCKED_PLUGINS", "").split(",") if n.strip()]
    try:
        pm, loaded, _ = build_manager(None, blocked)
    except PluginLoadError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    for impl in sorted(pm.hook.register_commands.get_hookimpls(), key=lambda i: i.plugin_name):
        if impl.plugin_name in loaded:
            try:
                impl.function(*[{"cli": cli}[a] for a in impl.argnames])
            except Exception as exc:  # noqa: BLE001 - a broken plugin is named, as at every startup hook
                click.echo(f"error: plugin {impl.plugin_name!r} failed in register_commands: "
                           f"{type(exc).__name__}: {exc}", err=True)
                sys.exit(2)


def main() -> None:
    _register_plugin_commands()
    try:
        cli.main(prog_name="glia")
    except Exception as exc:  # startup errors (config, schema, plugins) end with a clear line
        from core.config import ConfigError
        from core.migrate import SchemaError
        from core.plugins import PluginLoadError

        if isinstance(exc, (ConfigError, SchemaError, PluginLoadError)):
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        raise
