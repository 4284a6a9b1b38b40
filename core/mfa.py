"""A second factor for staff: TOTP (pyotp) with ten single-use recovery codes.

Admins and managers must enrol (a clinic can require it of all its staff); until they have, the
access check sends them to the enrolment page. Codes are accepted once: a TOTP step no earlier
than the last accepted one is refused, and a recovery code is marked used in the same UPDATE
that checks it was not, so two requests racing with one code cannot both pass.

The TOTP secret is sealed at rest with AES-GCM under a key that never lives in the database
(``secret_key``), bound to its user's id, so a database copy alone yields no codes. Rows written
before sealing existed are sealed by migration 0014 when the key is in its environment, else the
first time they are used.
"""
from __future__ import annotations

import base64
import hmac
import io
import secrets
from datetime import datetime

import pyotp
import segno
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import delete, update
from sqlmodel import Session, select

from core.models import Clinic, MfaFactor, MfaRecoveryCode, Role, User, utcnow

ISSUER = "Glia"
RECOVERY_CODES = 10
ENROL_MINUTES = 30  # an unconfirmed secret older than this is started again
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper
SEALED = "g1:"  # the prefix of a sealed secret (a plain base32 secret never contains ":")
_PURPOSE = b"glia mfa_factor.secret v1"


class MfaKeyError(RuntimeError):
    """A sealed secret does not open under this server's key (GLIA_MFA_KEY or GLIA_SECRET_KEY changed)."""


# -- the secret at rest --------------------------------------------------------------------

def derive_key(material: bytes) -> bytes:
    """A 256-bit key for this one purpose, so the material's other uses (cookies) stay apart."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(material)


def secret_key() -> bytes:
    """GLIA_MFA_KEY if set, else the configured SECRET_KEY; a key generated at start (development,
    tests) changes with every process, so then the audit key, which is kept outside the database too."""
    from core.audit_chain import current_key

    cfg = current_app.config
    if cfg.get("GLIA_MFA_KEY"):
        return derive_key(cfg["GLIA_MFA_KEY"].encode())
    if not cfg.get("GLIA_SECRET_KEY_GENERATED"):
        return derive_key(cfg["SECRET_KEY"].encode())
    return derive_key(current_key())


def seal(secret: str, user_id: int, key: bytes | None = None) -> str:
    nonce = secrets.token_bytes(12)
    box = AESGCM(key or secret_key()).encrypt(nonce, secret.encode(), _bound(user_id))
    return SEALED + base64.urlsafe_b64encode(nonce + box).decode()


def unseal(factor: MfaFactor) -> str:
    """The base32 secret; a row from before sealing is returned as stored (the caller seals it)."""
    if not factor.secret.startswith(SEALED):
        return factor.secret
    try:
        raw = base64.urlsafe_b64decode(factor.secret[len(SEALED):])
        return AESGCM(secret_key()).decrypt(raw[:12], raw[12:], _bound(factor.user_id)).decode()
    except (InvalidTag, ValueError):
        raise MfaKeyError("the second factor's secret does not open under this server's key") from None


def _bound(user_id: int) -> bytes:
    """Associated data: a sealed secret copied onto another user's row does not open."""
    return b"user:%d" % user_id


def required_roles() -> tuple[str, ...]:
    """Roles that must enrol: admins and managers, except under the test suite's fixtures,
    whose demo logins use a password alone (a test passes GLIA_MFA_ROLES to turn it on)."""
    roles = current_app.config.get("GLIA_MFA_ROLES")
    if roles is None:
        roles = "" if current_app.config["GLIA_ENV"] == "testing" else "admin,manager"
    return tuple(r.strip() for r in roles.split(",") if r.strip())


def required(user: User, clinic: Clinic | None) -> bool:
    """Whether this staff user must have a second factor (no query: both rows are loaded)."""
    if user.role == Role.patient:
        return False
    return user.role.value in required_roles() or bool(clinic is not None and clinic.mfa_all_staff)


def enrolment_due(user: User, clinic: Clinic | None) -> bool:
    """Required and not enrolled yet: the access check then allows only the enrolment pages."""
    return user.mfa_enabled_at is None and required(user, clinic)


# -- enrolment ---------------------------------------------------------------------------

def start_enrolment(db: Session, user: User) -> MfaFactor:
    """A fresh unconfirmed secret; a confirmed factor stays in force until the new one is confirmed."""
    db.exec(delete(MfaFactor).where(MfaFactor.user_id == user.id, MfaFactor.confirmed_at.is_(None)))
    factor = MfaFactor(user_id=user.id, secret=seal(pyotp.random_base32(), user.id), created_at=utcnow())
    db.add(factor)
    db.flush()
    return factor


def pending_factor(db: Session, user: User) -> MfaFactor | None:
    factor = db.exec(select(MfaFactor).where(MfaFactor.user_id == user.id,
                                             MfaFactor.confirmed_at.is_(None))).first()
    if factor is None or (utcnow() - factor.created_at).total_seconds() > ENROL_MINUTES * 60:
        return None
    try:
        unseal(factor)
    except MfaKeyError:  # sealed under another key: start the set-up again
        return None
    return factor


def provisioning_uri(factor: MfaFactor, user: User) -> str:
    return pyotp.TOTP(unseal(factor)).provisioning_uri(name=user.email, issuer_name=ISSUER)


def qr_data_uri(uri: str) -> str:
    """The otpauth URI as an inline SVG image (the CSP allows data: images, not scripts)."""
    buf = io.BytesIO()
    segno.make(uri, error="m").save(buf, kind="svg", scale=5, border=2, xmldecl=False,
                                    title="QR code for your authenticator app")
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode()


def confirm_enrolment(db: Session, user: User, factor: MfaFactor, code: str) -> list[str] | None:
    """Switch the factor on if ``code`` is right; returns the new recovery codes (shown once)."""
    step = _matching_step(unseal(factor), code, utcnow())
    if step is None:
        return None
    db.exec(delete(MfaFactor).where(MfaFactor.user_id == user.id, MfaFactor.id != factor.id))
    now = utcnow()
    factor.confirmed_at = now
    factor.last_step = step
    user.mfa_enabled_at = now
    db.add_all([factor, user])
    return issue_recovery_codes(db, user)


def issue_recovery_codes(db: Session, user: User) -> list[str]:
    """Ten new codes replace any old ones; only their argon2 hashes are kept."""
    from core.auth import hasher

    db.exec(delete(MfaRecoveryCode).where(MfaRecoveryCode.user_id == user.id))
    codes = ["-".join("".join(secrets.choice(_ALPHABET) for _ in range(5)) for _ in range(2))
             for _ in range(RECOVERY_CODES)]
    db.add_all([MfaRecoveryCode(user_id=user.id, code_hash=hasher.hash(c)) for c in codes])
    db.flush()
    return codes


def remove(db: Session, user: User) -> None:
    """No factor and no recovery codes: the user enrols again (at once, if their role requires it)."""
    db.exec(delete(MfaRecoveryCode).where(MfaRecoveryCode.user_id == user.id))
    db.exec(delete(MfaFactor).where(MfaFactor.user_id == user.id))
    user.mfa_enabled_at = None
    db.add(user)


# -- the second sign-in step ---------------------------------------------------------------

def verify(db: Session, user: User, code: str) -> str | None:
    """Check a TOTP code or a recovery code; returns which kind was used, or None.
    Raises MfaKeyError (no sign-in with a TOTP code) when the secret does not open."""
    cleaned = "".join(code.split()).lower()
    if cleaned.isdigit() and len(cleaned) == 6:
        return "totp" if _use_totp(db, user, cleaned) else None
    return "recovery" if _use_recovery_code(db, user, cleaned) else None


def recovery_codes_left(db: Session, user: User) -> int:
    return len(db.exec(select(MfaRecoveryCode.id).where(MfaRecoveryCode.user_id == user.id,
                                                        MfaRecoveryCode.used_at.is_(None))).all())


def _use_totp(db: Session, user: User, code: str) -> bool:
    factor = db.exec(select(MfaFactor).where(MfaFactor.user_id == user.id,
                                             MfaFactor.confirmed_at.is_not(None))).first()
    if factor is None:
        return False
    secret = unseal(factor)
    step = _matching_step(secret, code, utcnow())
    if step is None or step <= factor.last_step:
        return False
    resealed = {} if factor.secret.startswith(SEALED) else {"secret": seal(secret, user.id)}
    moved = db.exec(update(MfaFactor).where(MfaFactor.id == factor.id, MfaFactor.last_step < step)
                    .values(last_step=step, **resealed))
    return moved.rowcount == 1


def _use_recovery_code(db: Session, user: User, code: str) -> bool:
    from core.auth import hasher

    if len(code) > 40:
        return False
    unused = db.exec(select(MfaRecoveryCode).where(MfaRecoveryCode.user_id == user.id,
                                                   MfaRecoveryCode.used_at.is_(None))).all()
    formatted = code if "-" in code else f"{code[:5]}-{code[5:]}"
    for row in unused:
        try:
            hasher.verify(row.code_hash, formatted)
        except (VerificationError, InvalidHashError):
            continue
        used = db.exec(update(MfaRecoveryCode).where(MfaRecoveryCode.id == row.id,
                                                     MfaRecoveryCode.used_at.is_(None))
                       .values(used_at=utcnow()))
        return used.rowcount == 1
    return False


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The 30-second step whose code this is, allowing one step of clock drift either way."""
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    step = totp.timecode(now)
    found = None
    for candidate in (step - 1, step, step + 1):
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            found = candidate
    return found
