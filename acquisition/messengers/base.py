"""What every messenger adapter shares: the Event it emits, the module Protocol, and the small
checks (JSON shape, epoch times, constant-time secrets, Meta signatures, handle hygiene) that
must behave the same in all seven adapters."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from acquisition.errors import Invalid

REF_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")
"""Refs we make: they fit every payload channel (Telegram, Meta, Viber, VK, MAX)."""
INBOUND_REF = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""Refs we accept back: anything else in a payload is kept out of the Event (ref=None)."""

Kind = Literal["start", "optin", "optout", "message", "ignored"]
Obj = dict[str, object]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Event:
    """One thing a person did in a messenger, normalised across platforms."""

    kind: Kind
    event_id: str  # provider's idempotency key, unique per channel
    user_id: str  # messenger user id as a string ("" when the platform names no user)
    at: datetime  # provider's event time, timezone-aware UTC
    event_type: str  # provider's own type name
    ref: str | None = None
    text: str | None = None
    language: str | None = None
    user_name: str | None = None
    subscribes: bool = False  # by the platform's rule, the person may now be messaged


class Messenger(Protocol):
    """The interface every module in this package satisfies (a module, not a class)."""

    NAME: str
    LABEL: str
    PHONE_ONLY: bool
    HAS_PAYLOAD: bool
    CREDENTIALS: tuple[str, ...]

    def normalize_handle(self, raw: str) -> str: ...
    def deep_link(self, handle: str, ref: str | None, text: str | None = None) -> str: ...
    def verify(
        self, credentials: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> bool: ...
    def handshake(
        self, credentials: Mapping[str, str], query: Mapping[str, str], body: bytes | None
    ) -> str | None: ...
    def parse(self, body: bytes, received_at: datetime | None = None) -> list[Event]: ...
    def welcome_response(
        self, event: Event, text: str, sender_name: str | None = None
    ) -> dict[str, object] | None: ...
    def webhook_setup(self, url: str, credentials: Mapping[str, str]) -> str: ...


# --- webhook bodies: every shape problem becomes Invalid(field="body"), never another error ---


def bad(message: str) -> Invalid:
    return Invalid(message, field="body")


def load_object(body: bytes) -> Obj:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise bad("body is not valid JSON") from exc
    return need_obj(data, "body")


def need_obj(value: object, where: str) -> Obj:
    if not isinstance(value, dict):
        raise bad(f"{where} must be a JSON object")
    return value


def loose(value: object) -> Obj:
    """For updates we only log: a non-object is treated as empty rather than rejected."""
    return value if isinstance(value, dict) else {}


def opt_obj(parent: Obj, key: str, where: str) -> Obj | None:
    value = parent.get(key)
    return None if value is None else need_obj(value, f"{where}.{key}")


def obj_list(parent: Obj, key: str, where: str, required: bool = False) -> list[Obj]:
    value = parent.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise bad(f"{where}.{key} must be a list")
    return [need_obj(item, f"{where}.{key}[]") for item in value]


def need_int(parent: Obj, key: str, where: str) -> int:
    value = parent.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad(f"{where}.{key} must be an integer")
    return value


def need_str(parent: Obj, key: str, where: str) -> str:
    value = parent.get(key)
    if not isinstance(value, str) or not value:
        raise bad(f"{where}.{key} must be a non-empty string")
    return value


def opt_str(parent: Obj | None, key: str) -> str | None:
    """Display-only fields (names, text, locale): a wrong type is dropped, not fatal."""
    value = None if parent is None else parent.get(key)
    return value if isinstance(value, str) else None


def opt_int(parent: Obj | None, key: str) -> int | None:
    value = None if parent is None else parent.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def clean_ref(value: object) -> str | None:
    return value if isinstance(value, str) and INBOUND_REF.fullmatch(value) else None


def epoch(value: int, per_second: int, where: str) -> datetime:
    """`value` seconds (per_second=1) or milliseconds (1000) since 1970 as an aware UTC time."""
    try:
        at = _EPOCH + timedelta(milliseconds=value * 1000 // per_second)
    except OverflowError as exc:
        raise bad(f"{where} is not a plausible time") from exc
    if value < 0:
        raise bad(f"{where} is not a plausible time")
    return at


def fallback_time(received_at: datetime | None) -> datetime:
    """Time for events whose body carries none (VK message_allow/deny, Viber webhook checks):
    the caller's receipt time, else now. Never the epoch: it would sort an opt-out first."""
    return (received_at or datetime.now(UTC)).astimezone(UTC)


# --- authenticity ---


def same_secret(expected: str | None, given: str | None) -> bool:
    """Constant-time equality; an unset secret never matches, so a missing credential fails."""
    if not expected or given is None:
        return False
    return hmac.compare_digest(
        expected.encode("utf-8", "replace"), given.encode("utf-8", "replace")
    )


def hmac_hex_ok(key: str | None, signature: str | None, body: bytes) -> bool:
    """`signature` is the hex HMAC-SHA256 of the raw body keyed by `key` (Meta, Viber)."""
    if not key or not signature:
        return False
    expected = hmac.new(key.encode("utf-8", "replace"), body, hashlib.sha256).hexdigest()
    return same_secret(expected, signature.strip().lower())


def meta_verify(credentials: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> bool:
    """Meta's `X-Hub-Signature-256: sha256=<hex>`, shared by WhatsApp, Messenger and Instagram."""
    scheme, _, signature = headers.get("x-hub-signature-256", "").partition("=")
    if scheme.strip().lower() != "sha256":
        return False
    return hmac_hex_ok(credentials.get("app_secret"), signature, body)


def meta_handshake(credentials: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """Meta's GET verification: echo hub.challenge when our verify token is presented."""
    if query.get("hub.mode") != "subscribe":
        return None
    if not same_secret(credentials.get("verify_token"), query.get("hub.verify_token")):
        return None
    return query.get("hub.challenge") or None


# --- handles and links ---


def plain(raw: str, what: str, spaces_ok: bool = False) -> str:
    """Trim, then refuse what no handle contains: control characters, inner spaces and
    non-ASCII look-alikes (a Cyrillic "а" pasted into a Latin name opens someone else's chat)."""
    value = raw.strip()
    if not value:
        raise Invalid(f"{what} is empty", field="handle")
    for char in value:
        if unicodedata.category(char)[0] == "C":
            raise Invalid(f"{what} contains an invisible control character", field="handle")
        if char.isspace() and not spaces_ok:
            raise Invalid(f"{what} must not contain spaces", field="handle")
        if not char.isascii():
            raise Invalid(
                f"{what} must use Latin letters, digits and punctuation only; "
                f"{char!r} (U+{ord(char):04X}) is not one (a look-alike letter?)",
                field="handle",
            )
    return value


def link_parts(
    value: str, hosts: tuple[str, ...], what: str
) -> tuple[str, list[str], dict[str, str]] | None:
    """Host, path segments and query of a pasted link on one of `hosts` (scheme optional);
    None when `value` is not a link at all."""
    if "/" not in value and ":" not in value:
        return None
    try:
        parts = urlsplit(value if "://" in value else f"https://{value}")
        host = (parts.hostname or "").removeprefix("www.")
    except ValueError:
        host = ""
    if host not in hosts:
        raise Invalid(f"{what}: expected a link on {' or '.join(hosts)}", field="handle")
    segments = [part for part in parts.path.split("/") if part]
    return host, segments, dict(parse_qsl(parts.query))


def check_ref(ref: str | None) -> str | None:
    """Callers pass refs we made, or None when no click could be recorded (the link then opens
    the chat without one); anything else is a programming error, not user input."""
    if ref is not None and not REF_PATTERN.fullmatch(ref):
        raise ValueError(f"ref must match {REF_PATTERN.pattern}")
    return ref


def query_string(params: Mapping[str, str | None]) -> str:
    """Percent-encoded query (spaces as %20, which every messenger app decodes); empty values
    are left out and unpaired surrogates from stored text cannot raise."""
    present = {key: value for key, value in params.items() if value}
    return urlencode(present, quote_via=quote, safe="", encoding="utf-8", errors="replace")


def with_query(url: str, params: Mapping[str, str | None]) -> str:
    """`url?query`, or just `url` when every value is empty."""
    query = query_string(params)
    return f"{url}?{query}" if query else url


def segment(handle: str) -> str:
    """A handle as one path segment: even an unvalidated handle cannot change the link's host."""
    return quote(handle, safe="", errors="replace")
