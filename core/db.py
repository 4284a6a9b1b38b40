"""Engine and session handling, the same on SQLite and PostgreSQL.

SQLite gets the pysqlite recipe (we emit BEGIN ourselves so savepoints work). Its
transactions start with BEGIN IMMEDIATE, taking the write lock up front, because
SQLAlchemy ignores FOR UPDATE there and a read that later writes could otherwise fail;
read-only sessions ask for a deferred BEGIN instead.

Requests: a GET or HEAD only reads. Its session is deferred on SQLite (ordinary on
PostgreSQL), so it never holds a write lock and never waits for one. What such a request
must still write (its audit rows, the sign-in session's last-seen time) is queued with
``later()`` and written in one short write transaction when the view has finished, before
the response leaves; if that transaction fails, the response is the error page. This
avoids SQLite WAL's trap: a deferred transaction that has read and then tries to write
fails with SQLITE_BUSY (busy_snapshot) whenever another connection wrote meanwhile, and
busy_timeout does not help. Other methods (and GET views marked ``@writes``) change data:
they begin IMMEDIATE on SQLite, so their read-then-write cannot fail that way.

Engines hide bound parameters from SQLAlchemy's error messages and logs: they are patient
data, and an IntegrityError's text ends up in tracebacks.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from flask import current_app, g
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

DEFAULT_URL = "sqlite:///instance/glia.db"


def database_url(explicit: str | None = None) -> str:
    """GLIA_DATABASE_URL wins over the default file under ./instance."""
    return explicit or os.environ.get("GLIA_DATABASE_URL") or DEFAULT_URL


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, hide_parameters=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN " + conn.get_execution_options().get("sqlite_begin", "IMMEDIATE"))

    return engine


def sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database)
    return None


def new_session(engine: Engine, *, write: bool = True) -> Session:
    """A session; a read-only one (write=False) never takes SQLite's write lock up front,
    in any of its transactions, so it cannot hold up writers."""
    if not write and is_sqlite(engine):
        engine = engine.execution_options(sqlite_begin="DEFERRED")
    return Session(engine, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine, *, write: bool = True):
    """Commit on success, roll back on any error: nothing half-written."""
    session = new_session(engine, write=write)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LATER = "glia_later"  # session.info key: writes queued by a read-only request


def writes(view):
    """Mark a GET view that changes data: its request gets a write session from the start."""
    view.glia_writes = True
    return view


def reads(view):
    """Mark a POST view that only reads (a search posted to keep its terms out of the URL): its
    request reads in a deferred transaction, as a GET does, and its audit row is written after."""
    view.glia_reads = True
    return view


def begin_request() -> None:
    """before_request (first): decide whether this request only reads."""
    from flask import request

    view = current_app.view_functions.get(request.endpoint or "")
    if request.method in READ_METHODS:
        g.db_reads_only = not getattr(view, "glia_writes", False)
    else:
        g.db_reads_only = getattr(view, "glia_reads", False)


def get_session() -> Session:
    """The request's session, opened on first use and closed at teardown."""
    if "db" not in g:
        reads_only = g.get("db_reads_only", False)
        g.db = new_session(current_app.extensions["glia"].engine, write=not reads_only)
        if reads_only:
            g.db.info[_LATER] = []
    return g.db


@event.listens_for(Session, "before_flush")
def _read_only_flush(session, _context, _instances):
    """A read-only request that changes rows directly risks SQLITE_BUSY under load: say where."""
    if _LATER in session.info and (session.new or session.dirty or session.deleted):
        from flask import request

        current_app.logger.warning("GET view %s changed rows in its read transaction; use later() or "
                                   "mark it @writes", request.endpoint)


_MEMOS = "glia_memos"


def memo(session: Session, name: str) -> dict:
    """A place for answers computed from this transaction's reads (the gate's consent status, the
    day's sessions), asked for more than once per page. Any write, flushed or still pending, and
    the end of the transaction drop every answer, so none is ever reused once it may be stale."""
    if session.new or session.dirty or session.deleted:
        session.info.pop(_MEMOS, None)
    return session.info.setdefault(_MEMOS, {}).setdefault(name, {})


@event.listens_for(Session, "after_flush")
@event.listens_for(Session, "after_transaction_end")
def _forget_memos(session, *_args) -> None:
    session.info.pop(_MEMOS, None)


def later(write) -> None:
    """Run ``write(session)`` in the current transaction, or, in a read-only request, queue it
    for the short write transaction that ends the request (atomic with nothing it read, but
    committed before the response is sent)."""
    session = get_session()
    queued = session.info.get(_LATER)
    if queued is None:
        write(session)
    else:
        queued.append(write)


@contextmanager
def bound(session: Session):
    """Run request-time code (hooks, url_for) for a caller that holds its own session: a shell, a
    command or a job. Inside, get_session() is ``session``, so plugins read and write in the caller's
    transaction instead of opening a second writer (which SQLite would make wait for the first)."""
    from flask import has_request_context

    ctx = None if has_request_context() else current_app.test_request_context()
    if ctx is not None:
        ctx.push()
    previous = g.pop("db", None)
    g.db = session
    try:
        yield session
    finally:
        g.pop("db", None)
        if previous is not None:
            g.db = previous
        if ctx is not None:
            ctx.pop()


def finish_request_session(commit: bool) -> bool:
    """Commit (or roll back) the request's work before the response leaves; True if committed.

    A read-only request ends its read transaction first, then writes what it queued with
    ``later()`` in a transaction of its own, holding the write lock only for those inserts.
    """
    session = g.get("db")
    if session is None:
        return commit
    queued = session.info.pop(_LATER, None)
    if commit:
        session.commit()
    else:
        session.rollback()
    if commit and queued:
        with session_scope(session.get_bind()) as own:
            for write in queued:
                write(own)
    return commit


def close_request_session(_exc: BaseException | None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.rollback()
        session.close()
