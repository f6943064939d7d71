"""Users of the web UI: create, list, authenticate.

Passwords are hashed with argon2id (memory-hard; argon2-cffi's RFC 9106 low-memory profile:
64 MiB, 3 passes, 4 lanes). Signing in with an unknown email costs the same hash as a wrong
password, so the time of an answer does not tell which emails exist.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from acquisition.errors import Conflict, Invalid
from acquisition.models import utcnow
from acquisition.models.accounts import User

MIN_PASSWORD = 10
# argon2 hashes any length in the same time, but a megabyte of "password" is not a password.
MAX_PASSWORD = 1024
MAX_EMAIL = 254
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")

_hasher = PasswordHasher()


def normalize_email(raw: object, field: str = "email") -> str:
    """The stored form: trimmed, NFC, lower case (people type their address in any case)."""
    if not isinstance(raw, str):
        raise Invalid("must be an email address", field=field)
    email = unicodedata.normalize("NFC", raw.strip()).lower()
    if len(email) > MAX_EMAIL or not _EMAIL.fullmatch(email) or not email.isprintable():
        raise Invalid("must be an email address such as anna@example.com", field=field)
    return email


def check_password(raw: object, field: str = "password") -> str:
    if not isinstance(raw, str):
        raise Invalid("must be text", field=field)
    if len(raw) < MIN_PASSWORD:
        raise Invalid(f"must be at least {MIN_PASSWORD} characters long", field=field)
    if len(raw) > MAX_PASSWORD:
        raise Invalid(f"must be at most {MAX_PASSWORD} characters long", field=field)
    return raw


def hash_password(password: str) -> str:
    return _hasher.hash(password)


# What an unknown email's password is checked against, so that answer costs what a known one
# does. Made with the hasher's current parameters; should they grow, a fresh one is made once.
_DECOY = (
    "$argon2id$v=19$m=65536,t=3,p=4$A2EE8f9uQf3xjMsXNBxlBA$"
    "ZJOZSYE8UDzlQ2E1bfwJBkYtfteQx/anC9IIKc8XVfI"
)


@cache
def _decoy() -> str:
    if _hasher.check_needs_rehash(_DECOY):
        return _hasher.hash("decoy password that nobody has")
    return _DECOY


def create(session: Session, email: str, password: str) -> User:
    address = normalize_email(email)
    secret = check_password(password)
    if session.scalar(select(User.id).where(User.email == address)) is not None:
        raise Conflict(f"a user with email {address} already exists", field="email")
    user = User(email=address, password_hash=hash_password(secret), created_at=utcnow())
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, user: User, password: str) -> None:
    user.password_hash = hash_password(check_password(password))
    session.flush()


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The user whose email and password these are, else None (never says which was wrong).

    Read-only: the hash takes tens of milliseconds and must not hold a write lock. The caller
    then records the sign-in (`signed_in`) in a short transaction of its own."""
    try:
        address = normalize_email(email)
    except Invalid:
        address = None
    user = session.scalar(select(User).where(User.email == address)) if address else None
    if len(password) > MAX_PASSWORD:
        password = password[: MAX_PASSWORD + 1]  # still hashed: the same cost as any answer
    try:
        _hasher.verify(user.password_hash if user else _decoy(), password)
    except (VerificationError, InvalidHashError):
        return None
    return user


def upgraded_hash(user: User, password: str) -> str | None:
    """A new hash when the hasher's parameters grew since the user's was made, else None."""
    if _hasher.check_needs_rehash(user.password_hash):
        return hash_password(password)
    return None


def signed_in(session: Session, user_id: int, new_hash: str | None = None) -> None:
    user = session.get(User, user_id)
    if user is None:
        return
    user.last_login_at = utcnow()
    if new_hash is not None:
        user.password_hash = new_hash
    session.flush()


def get(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def list_all(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))
