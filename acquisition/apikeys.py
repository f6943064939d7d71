"""API keys: shown once, stored as SHA-256, recognisable by their `acq_` prefix, revocable.

Keys carry 256 random bits, so a fast hash is enough and lookup by hash needs no secret-dependent
comparison in Python.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from acquisition.errors import NotFound, Unauthorized
from acquisition.models import ApiKey, utcnow

PREFIX = "acq_"
# Writing last_used_at on every request would turn every read into a write.
TOUCH_EVERY = timedelta(minutes=1)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(session: Session, name: str) -> tuple[ApiKey, str]:
    token = PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(name=name, prefix=token[:10], key_hash=_digest(token))
    session.add(key)
    session.flush()
    return key, token


def verify(session: Session, token: str) -> ApiKey:
    if not token.startswith(PREFIX) or len(token) > 100:
        raise Unauthorized("the API key is not valid")
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == _digest(token)))
    if key is None or key.revoked_at is not None:
        raise Unauthorized("the API key is not valid or was revoked")
    return key


def touch(session: Session, key: ApiKey) -> None:
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > TOUCH_EVERY:
        session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))


def revoke(session: Session, key_id_or_prefix: str) -> ApiKey:
    query = select(ApiKey)
    if key_id_or_prefix.isdecimal():
        query = query.where(ApiKey.id == int(key_id_or_prefix))
    else:
        query = query.where(ApiKey.prefix == key_id_or_prefix[:10])
    key = session.scalar(query)
    if key is None:
        raise NotFound(f"no API key {key_id_or_prefix!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


def list_all(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))
