"""The audit log's keyed chain: rows are written unsealed, then sealed in a short step.

Why this shape. A chain whose every row names the previous row's hash needs one writer at a
time, for as long as that writer's transaction lasts (the old design held a deployment-wide
lock until each request committed). Here a request only inserts its row, with a random
nonce and an HMAC of the row under the audit key (``mac``): an edit before sealing is caught,
and so is a copy (its nonce repeats). After the transaction commits, a sealing step gives
every committed, unsealed row the next position in ``audit_seal`` and a chained
HMAC-SHA256 over the previous seal, the position and the whole row. Only one sealer runs at
a time, and only for the milliseconds the step takes:

- PostgreSQL: after commit, in its own transaction, behind ``pg_try_advisory_xact_lock``. A
  sealer that does not get the lock leaves its rows to the one that has it, or to the next.
- SQLite: inside the committing transaction, just before COMMIT. That transaction already
  holds SQLite's single write lock, so sealing there costs no extra lock or commit.

Rows are sealed in commit order, not id order (ids are handed out before commit). A row can
stay unsealed only briefly: the next seal picks it up, and ``glia audit seal`` (safe to run
from cron) and ``glia audit verify`` seal everything pending first.

The key (GLIA_AUDIT_KEY, or a file named by GLIA_AUDIT_KEY_FILE) is never in the database,
so someone who can write to the database but not read the key cannot recompute the chain
after an edit. Truncation at the end leaves a consistent shorter chain; it is caught against
a checkpoint (``glia audit checkpoint``): the signed position and hash of the head, which an
operator keeps elsewhere and hands to ``glia audit verify --checkpoint``. In development,
testing and the demo a key file is generated under instance/; production refuses to start
without a key.

Rows from before migration 0005 keep their unkeyed SHA-256 chain (prev_hash, hash), which
verify still walks; the migration seals them, in id order, at the start of the keyed chain.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import case, event, func, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from core.config import ConfigError
from core.models import AuditEvent, AuditSeal, utcnow

log = logging.getLogger("glia")

GENESIS = "0" * 64
LOCK_ID = 727274  # the PostgreSQL advisory lock only the sealing step takes
BATCH = 1000  # rows one sealing step takes at most (a request's step seals a few)
LOOKBACK = 1000  # a request's step also looks this far below the newest sealed row for late commits
UNSEALED = "glia_audit_unsealed"  # session.info: the smallest audit id this transaction added
SEAL_DUE = "glia_audit_seal_due"  # session.info: the same, once committed (PostgreSQL)
KEY_ENV, KEY_FILE_ENV = "GLIA_AUDIT_KEY", "GLIA_AUDIT_KEY_FILE"
_ROW = ("at", "clinic_id", "user_id", "role", "action", "object_type", "object_id", "patient_id",
        "outcome", "ip", "detail", "nonce")


# -- the key -----------------------------------------------------------------------------

def load_key(env: str, instance: Path) -> bytes:
    """The audit key from GLIA_AUDIT_KEY or GLIA_AUDIT_KEY_FILE; outside production a generated file."""
    raw = os.environ.get(KEY_ENV, "")
    where = KEY_ENV
    if not raw and os.environ.get(KEY_FILE_ENV):
        where = os.environ[KEY_FILE_ENV]
        try:
            raw = Path(where).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"refusing to start: cannot read the audit key file {where} ({exc.strerror})") from exc
    if not raw:
        if env == "production":
            raise ConfigError(
                f"refusing to start: set {KEY_ENV} to a random value of 32+ characters, or {KEY_FILE_ENV} to a "
                "file holding one, kept outside the database (it signs the audit chain)")
        return _dev_key(instance / "audit.key")
    if len(raw) < 32 or len(set(raw)) < 8:
        raise ConfigError(f"refusing to start: the audit key in {where} must be a random value of 32+ characters")
    return raw.encode()


def _dev_key(path: Path) -> bytes:
    """A key file for development and tests, made once (two processes racing agree on one)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".audit.key.{secrets.token_hex(4)}")
        tmp.write_text(secrets.token_hex(32))
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)  # atomic: fails if another process made the file first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip().encode()


def current_key() -> bytes:
    """The running app's key; outside an app (scripts), the environment's."""
    from flask import current_app, has_app_context

    if has_app_context() and "glia_audit_key" in current_app.extensions:
        return current_app.extensions["glia_audit_key"]
    return load_key(os.environ.get("GLIA_ENV", "production"), Path.cwd() / "instance")


# -- hashing -----------------------------------------------------------------------------

def _value(row, name: str):
    value = getattr(row, name)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if isinstance(value, datetime) else value


def _mac(key: bytes, *parts) -> str:
    message = json.dumps(parts, separators=(",", ":"), ensure_ascii=False).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def row_mac(key: bytes, row) -> str:
    """The keyed MAC a row carries from its insert on (catches edits before it is sealed)."""
    return _mac(key, "row", *[_value(row, n) for n in _ROW])


def seal_hash(key: bytes, prev: str, seq: int, row) -> str:
    """Position ``seq`` in the chain: the previous seal, the row's id and every stored column."""
    return _mac(key, "seal", prev, seq, row.id, *[_value(row, n) for n in (*_ROW, "mac", "prev_hash", "hash")])


def legacy_hash(prev: str, row) -> str:
    """The unkeyed chain of rows written before migration 0005."""
    parts = ["" if _value(row, n) is None else str(_value(row, n)) for n in _ROW[:-1]]
    return hashlib.sha256((prev + "\x1f" + "\x1f".join(parts)).encode()).hexdigest()


# -- sealing -----------------------------------------------------------------------------

_E, _S = AuditEvent.__table__, AuditSeal.__table__


def seal(conn: Connection, key: bytes, *, floor: int | None = None, limit: int = BATCH, legacy: bool = False) -> int:
    """Chain up to ``limit`` committed unsealed rows with id > ``floor`` (default: the look-back
    window below the newest sealed row); the caller holds the sealing lock. Returns rows sealed.

    Only rows with a MAC are sealed: every row written since migration 0005 has one, and that
    migration sealed the older rows (``legacy``), so a row without one is forged and stays out."""
    # one query: the unsealed rows, each carrying the chain's head (a request seals in two statements)
    sealed, head = _S.alias("sealed"), _S.alias("head")  # aliases: never correlated with the join below
    window = func.coalesce(select(func.max(sealed.c.event_id)).scalar_subquery(), 0) - LOOKBACK
    bound = window if floor is None else case((window < floor, window), else_=floor)
    latest = select(head.c.seq).order_by(head.c.seq.desc()).limit(1)
    signed = _E.c.mac.is_(None) if legacy else _E.c.mac.is_not(None)
    rows = conn.execute(select(_E, latest.scalar_subquery().label("head_seq"),
                               latest.with_only_columns(head.c.hash).scalar_subquery().label("head_hash"))
                        .outerjoin(_S, _S.c.event_id == _E.c.id)
                        .where(_S.c.seq.is_(None), _E.c.id > bound, signed).order_by(_E.c.id).limit(limit)).all()
    if not rows:
        return 0
    seq, prev = (rows[0].head_seq, rows[0].head_hash) if rows[0].head_seq is not None else (0, GENESIS)
    now, seals = utcnow(), []
    for row in rows:
        seq += 1
        prev = seal_hash(key, prev, seq, row)
        seals.append({"seq": seq, "event_id": row.id, "hash": prev, "sealed_at": now})
    conn.execute(insert(AuditSeal), seals)
    return len(seals)


def try_lock(conn: Connection) -> bool:
    """Take the sealing lock if free (PostgreSQL); SQLite's write transaction already is one."""
    if conn.dialect.name != "postgresql":
        return True
    return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": LOCK_ID}).scalar())


def seal_all(engine, key: bytes) -> int:
    """Seal everything pending, waiting for the lock (the CLI and verify)."""
    total = 0
    while True:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # SQLite: the IMMEDIATE transaction is the lock
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_ID})
            n = seal(conn, key, floor=0)
        total += n
        if n < BATCH:
            return total


def note_unsealed(session: Session, event_id: int) -> None:
    """Remember that this transaction added an audit row, so its commit seals it."""
    session.info[UNSEALED] = min(session.info.get(UNSEALED, event_id), event_id)


@event.listens_for(Session, "before_commit")
def _seal_in_transaction(session: Session) -> None:
    """SQLite: seal while this transaction holds the write lock; a failure fails the commit."""
    if UNSEALED not in session.info or session.get_bind().dialect.name != "sqlite":
        return
    session.flush()
    seal(session.connection(), current_key(), floor=session.info.pop(UNSEALED) - 1)


@event.listens_for(Session, "after_commit")
def _seal_due(session: Session) -> None:
    if UNSEALED in session.info:  # PostgreSQL: sealed once the session has given back its connection
        session.info[SEAL_DUE] = session.info.pop(UNSEALED)


@event.listens_for(Session, "after_transaction_end")
def _seal_after_commit(session: Session, transaction) -> None:
    """PostgreSQL: seal in a short transaction of its own, unless another sealer is at work.

    This runs after the session returned its connection to the pool (sealing on a second one
    while holding the first could exhaust the pool under load). The change is committed by
    now: a failed seal must not turn it into an error page, so it is logged and the rows wait
    for the next seal."""
    if transaction.parent is not None or SEAL_DUE not in session.info:
        return
    floor = session.info.pop(SEAL_DUE)
    try:
        with session.get_bind().begin() as conn:
            if try_lock(conn):
                seal(conn, current_key(), floor=floor - 1)
    except Exception as exc:  # noqa: BLE001 - see above; verify and `glia audit seal` finish the job
        log.warning("audit sealing deferred: %s", type(exc).__name__)


@event.listens_for(Session, "after_rollback")
def _forget_unsealed(session: Session) -> None:
    session.info.pop(UNSEALED, None)


# -- verifying ---------------------------------------------------------------------------

@dataclass
class Checkpoint:
    position: int
    hash: str
    at: str
    signature: str

    @classmethod
    def of_head(cls, key: bytes, position: int, head: str) -> "Checkpoint":
        at = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
        return cls(position, head, at, _mac(key, "checkpoint", position, head, at))

    @classmethod
    def load(cls, raw: str) -> "Checkpoint":
        try:
            data = json.loads(raw)
            return cls(int(data["position"]), str(data["hash"]), str(data["at"]), str(data["signature"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError("not a Glia audit checkpoint") from exc

    def genuine(self, key: bytes) -> bool:
        return hmac.compare_digest(self.signature, _mac(key, "checkpoint", self.position, self.hash, self.at))

    def dumps(self) -> str:
        return json.dumps(self.__dict__, indent=2)


@dataclass
class Report:
    sealed: int = 0
    unsealed: int = 0
    legacy: int = 0
    head: tuple[int, str] = (0, GENESIS)
    problem: str = ""
    bad_entry: int | None = None

    def fail(self, problem: str, entry: int | None = None) -> "Report":
        self.problem, self.bad_entry = problem, entry
        return self


def head(conn: Connection) -> tuple[int, str]:
    last = conn.execute(select(_S.c.seq, _S.c.hash).order_by(_S.c.seq.desc()).limit(1)).first()
    return (last.seq, last.hash) if last else (0, GENESIS)


def verify(conn: Connection, key: bytes, checkpoint: Checkpoint | None = None) -> Report:
    """Walk the sealed chain, then the rows not yet sealed, then the legacy chain, then the checkpoint."""
    report = Report()
    if checkpoint is not None and not checkpoint.genuine(key):
        return report.fail("the checkpoint's signature does not match this key (forged or another deployment's)")
    prev, expected = GENESIS, 1
    chain = conn.execute(select(_S.c.seq, _S.c.event_id.label("sealed_id"), _S.c.hash.label("seal"), _E)
                         .outerjoin(_E, _E.c.id == _S.c.event_id).order_by(_S.c.seq)
                         .execution_options(yield_per=2000))
    for row in chain:
        if row.seq != expected:
            return report.fail(f"positions {expected} to {row.seq - 1} are missing (entries deleted)", row.sealed_id)
        if row.id is None:
            return report.fail(f"entry {row.sealed_id} at position {row.seq} was deleted", row.sealed_id)
        if not hmac.compare_digest(row.seal, seal_hash(key, prev, row.seq, row)) or _bad_mac(key, row):
            return report.fail(f"entry {row.id} at position {row.seq} was changed, or the chain was recomputed "
                               "without the key", row.id)
        prev, expected = row.seal, expected + 1
        report.sealed += 1
    report.head = (expected - 1, prev)
    pending = conn.execute(select(_E).outerjoin(_S, _S.c.event_id == _E.c.id).where(_S.c.seq.is_(None))
                           .order_by(_E.c.id).execution_options(yield_per=2000))
    for row in pending:
        if row.mac is None or _bad_mac(key, row):
            return report.fail(f"entry {row.id} (not yet sealed) was changed or forged", row.id)
        report.unsealed += 1
    twice = conn.execute(select(_E.c.nonce).where(_E.c.nonce.is_not(None)).group_by(_E.c.nonce)
                         .having(func.count() > 1).limit(1)).scalar()
    if twice is not None:
        first = conn.execute(select(func.max(_E.c.id)).where(_E.c.nonce == twice)).scalar()
        return report.fail(f"entry {first} is a copy of an earlier entry", first)
    legacy_prev = GENESIS
    for row in conn.execute(select(_E).where(_E.c.mac.is_(None)).order_by(_E.c.id).execution_options(yield_per=2000)):
        if row.prev_hash != legacy_prev or legacy_hash(legacy_prev, row) != row.hash:
            return report.fail(f"entry {row.id} breaks the chain written before sealing", row.id)
        legacy_prev = row.hash
        report.legacy += 1
    if checkpoint is not None:
        if checkpoint.position > report.head[0]:
            return report.fail(f"the chain ends at position {report.head[0]}, but the checkpoint of {checkpoint.at} "
                               f"saw position {checkpoint.position}: entries at the end were deleted")
        at = conn.execute(select(_S.c.hash).where(_S.c.seq == checkpoint.position)).scalar()
        if checkpoint.position and at != checkpoint.hash:
            return report.fail(f"position {checkpoint.position} differs from the checkpoint of {checkpoint.at}: "
                               "the chain was rewritten")
    return report


def _bad_mac(key: bytes, row) -> bool:
    return row.mac is not None and not hmac.compare_digest(row.mac, row_mac(key, row))
