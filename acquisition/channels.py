"""Channels: a business's accounts in each messenger, with the credentials its webhook needs."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from acquisition import fields, messengers, relay
from acquisition.config import Network
from acquisition.errors import Conflict, Invalid, NotFound
from acquisition.models import Channel

CREDENTIAL_MAX = 512


@dataclass(frozen=True)
class ChannelSpec:
    messenger: str
    handle: str
    name: str
    credentials: dict[str, str]
    relay_url: str | None
    welcome_text: str | None


def parse(
    data: object, *, partial: bool = False, relay_networks: tuple[Network, ...] | None = None
) -> ChannelSpec:
    """A channel from the API's or a form's data. `relay_networks`: the private networks a
    relay_url may point at (the service's setting); None leaves that to the relay's own check
    before each send (scripts and tests)."""
    body = fields.obj(data)
    problems = fields.Problems()
    fields.unknown_keys(
        body,
        {"messenger", "handle", "name", "credentials", "relay_url", "welcome_text"},
        "",
        problems,
    )
    name = problems.take(fields.text, body, "messenger", max_length=16, required=True)
    adapter = problems.take(messengers.get, name) if name else None
    handle = None
    if adapter is not None:
        raw = problems.take(fields.text, body, "handle", max_length=200, required=True)
        handle = problems.take(adapter.normalize_handle, raw) if raw else None
    label = problems.take(fields.text, body, "name", max_length=100) or handle or ""
    creds = problems.take(_credentials, body.get("credentials"), adapter) or {}
    relay_url = problems.take(_relay_url, body.get("relay_url"), relay_networks)
    welcome = problems.take(fields.text, body, "welcome_text", max_length=1000, multiline=True)
    problems.check()
    assert adapter is not None and handle is not None
    return ChannelSpec(adapter.NAME, handle, label, creds, relay_url, welcome)


def _credentials(value: object, adapter: messengers.Messenger | None) -> dict[str, str]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise Invalid("must be an object", field="credentials")
    known = adapter.CREDENTIALS if adapter is not None else ()
    result: dict[str, str] = {}
    for key, secret in value.items():
        field = f"credentials.{key}"
        if key not in known:
            raise Invalid(f"unknown credential; this messenger takes: {', '.join(known)}", field)
        if not isinstance(secret, str) or not secret or len(secret) > CREDENTIAL_MAX:
            raise Invalid(
                f"must be a non-empty string of at most {CREDENTIAL_MAX} characters", field
            )
        if not secret.isprintable() or not secret.isascii() or secret != secret.strip():
            raise Invalid("must be printable ASCII without surrounding spaces", field)
        result[key] = secret
    if adapter is not None and adapter.NAME == "telegram" and "secret" not in result:
        # Telegram sends back whatever secret_token setWebhook was given: make a strong one.
        result["secret"] = secrets.token_urlsafe(32)
    return result


def _relay_url(value: object, allowed: tuple[Network, ...] | None) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 500:
        raise Invalid("must be an http(s) URL of at most 500 characters", field="relay_url")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid("must be an http(s) URL such as https://bot.example.com/hook", "relay_url")
    if allowed is not None and _fixed_host(parts.hostname):
        # An address written out (or localhost) is checked now, as the relay will check it,
        # rather than at the first relay; a name is resolved and checked before every send,
        # since what it points at can change.
        _address, refusal = relay.vetted_address(value, allowed)
        if refusal:
            raise Invalid(refusal, field="relay_url")
    return value


def _fixed_host(host: str) -> bool:
    """An IP address, or localhost: what it reaches does not depend on anybody's DNS."""
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def create(session: Session, spec: ChannelSpec) -> Channel:
    exists = session.scalar(
        select(Channel.id).where(Channel.messenger == spec.messenger, Channel.handle == spec.handle)
    )
    if exists is not None:
        raise Conflict(
            f"a {spec.messenger} channel with handle {spec.handle!r} already exists (id {exists})",
            field="handle",
        )
    channel = Channel(
        messenger=spec.messenger,
        handle=spec.handle,
        name=spec.name,
        credentials=spec.credentials,
        relay_url=spec.relay_url,
        welcome_text=spec.welcome_text,
    )
    session.add(channel)
    session.flush()
    return channel


def update(
    session: Session,
    channel: Channel,
    data: object,
    relay_networks: tuple[Network, ...] | None = None,
) -> Channel:
    """Change name, credentials, relay or welcome text; the messenger and handle stay."""
    body = fields.obj(data)
    problems = fields.Problems()
    fields.unknown_keys(body, {"name", "credentials", "relay_url", "welcome_text"}, "", problems)
    adapter = messengers.get(channel.messenger)
    if "name" in body:
        name = problems.take(fields.text, body, "name", max_length=100, required=True)
    if "credentials" in body:
        creds = problems.take(_credentials, body["credentials"], adapter)
    if "relay_url" in body:
        relay_url = problems.take(_relay_url, body["relay_url"], relay_networks)
    if "welcome_text" in body:
        welcome = problems.take(fields.text, body, "welcome_text", max_length=1000, multiline=True)
    problems.check()
    if "name" in body and name:
        channel.name = name
    if "credentials" in body and creds is not None:
        channel.credentials = {**channel.credentials, **creds}
    if "relay_url" in body:
        channel.relay_url = relay_url
    if "welcome_text" in body:
        channel.welcome_text = welcome
    session.flush()
    return channel


def get(session: Session, channel_id: int) -> Channel:
    channel = session.get(Channel, channel_id)
    if channel is None:
        raise NotFound(f"no channel with id {channel_id}", field="id")
    return channel


def get_many(session: Session, ids: Sequence[int]) -> dict[int, Channel]:
    rows = session.scalars(select(Channel).where(Channel.id.in_(set(ids)))).all()
    return {row.id: row for row in rows}


def list_all(session: Session) -> list[Channel]:
    return list(session.scalars(select(Channel).order_by(Channel.id)))


def mask(secret: str) -> str:
    """What a stored secret looks like when shown again: enough to recognise, not to use."""
    return secret[:4] + "…" if len(secret) > 8 else "…"


def public(channel: Channel, base_url: str, *, reveal: bool = False) -> dict[str, Any]:
    """The API form. Secrets are shown in full only once, in the answer that created them."""
    adapter = messengers.get(channel.messenger)
    shown: Mapping[str, str] = (
        channel.credentials
        if reveal
        else {key: mask(value) for key, value in channel.credentials.items()}
    )
    hook_url = f"{base_url}/hooks/{channel.messenger}/{channel.id}"
    webhook: dict[str, Any] = {
        "url": hook_url,
        "ready": all(key in channel.credentials for key in adapter.CREDENTIALS),
        "setup": adapter.webhook_setup(hook_url, shown),
    }
    if channel.messenger == "telegram" and "secret" in shown:
        webhook["secret"] = shown["secret"]
    return {
        "id": channel.id,
        "messenger": channel.messenger,
        "handle": channel.handle,
        "name": channel.name,
        "credentials": dict(shown),
        "relay_url": channel.relay_url,
        "welcome_text": channel.welcome_text,
        "phone_only": adapter.PHONE_ONLY,
        "webhook": webhook,
        "created_at": channel.created_at.isoformat(),
    }
