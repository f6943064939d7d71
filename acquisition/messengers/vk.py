"""VK communities (Callback API): `vk.me/<name>?ref=<ref>` comes back as `message_new` with
`object.message.ref`. There is no header signature: the configured secret is a field of the
JSON body, and the server is confirmed by answering a `confirmation` request with a string."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime

from acquisition.errors import Invalid
from acquisition.messengers.base import (
    Event,
    Kind,
    Obj,
    check_ref,
    clean_ref,
    epoch,
    fallback_time,
    link_parts,
    load_object,
    loose,
    need_int,
    need_obj,
    need_str,
    opt_int,
    opt_str,
    plain,
    same_secret,
    segment,
    with_query,
)

NAME = "vk"
LABEL = "VK"
PHONE_ONLY = False
HAS_PAYLOAD = True
CREDENTIALS: tuple[str, ...] = ("secret", "confirmation")

_SCREEN_NAME = re.compile(r"[a-z0-9_.]{2,32}")  # includes club123 / public123


def normalize_handle(raw: str) -> str:
    """The community's screen name (or club<id>), lower-cased: VK ignores case."""
    value = plain(raw, "VK community")
    parts = link_parts(value, ("vk.com", "vk.ru", "m.vk.com", "vk.me"), "VK link")
    if parts is not None:
        _, segments, _ = parts
        value = segments[0] if len(segments) == 1 else ""
    value = value.removeprefix("@").lower()
    if not _SCREEN_NAME.fullmatch(value):
        raise Invalid(
            "expected a VK community screen name such as mybakery, club123 or "
            "https://vk.com/mybakery: 2-32 Latin letters, digits, _ or dots",
            field="handle",
        )
    return value


def deep_link(handle: str, ref: str | None, text: str | None = None) -> str:
    """vk.me documents no prefilled text, so `text` is ignored."""
    return with_query(f"https://vk.me/{segment(handle)}", {"ref": check_ref(ref)})


def _body(body: bytes | None) -> Obj | None:
    try:
        data = json.loads(body or b"")
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def verify(credentials: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> bool:
    secret = loose(_body(body)).get("secret")
    return same_secret(credentials.get("secret"), secret if isinstance(secret, str) else None)


def is_confirmation(body: bytes | None) -> bool:
    return loose(_body(body)).get("type") == "confirmation"


def handshake(
    credentials: Mapping[str, str], query: Mapping[str, str], body: bytes | None
) -> str | None:
    """The confirmation string, for a confirmation request that carries our secret
    (so the secret must be set in VK before the server is confirmed)."""
    if body is None or not is_confirmation(body) or not verify(credentials, {}, body):
        return None
    return credentials.get("confirmation") or None


def parse(body: bytes, received_at: datetime | None = None) -> list[Event]:
    """One callback is one event. message_allow/deny carry no time: see fallback_time."""
    data = load_object(body)
    callback_type = need_str(data, "type", "body")
    group = need_int(data, "group_id", "body")
    if callback_type == "confirmation":
        at = fallback_time(received_at)
        return [Event("ignored", f"confirmation:{group}", "", at, callback_type)]
    event_id = need_str(data, "event_id", "body")
    payload = need_obj(data.get("object"), "body.object")
    if callback_type == "message_new":
        return [_message(event_id, payload)]
    kind: Kind = "ignored"
    ref: str | None = None
    if callback_type in ("message_allow", "message_deny"):
        user = need_int(payload, "user_id", "body.object")
        kind = "optin" if callback_type == "message_allow" else "optout"
        ref = clean_ref(payload.get("key"))  # allowMessagesFromGroup(key) can carry a ref
    else:
        user = opt_int(payload, "user_id") or opt_int(payload, "from_id") or 0
    date = opt_int(payload, "date")
    at = epoch(date, 1, "body.object.date") if date is not None else fallback_time(received_at)
    user_id = str(user) if user else ""
    return [Event(kind, event_id, user_id, at, callback_type, ref, subscribes=kind == "optin")]


def _message(event_id: str, payload: Obj) -> Event:
    where = "body.object.message"
    message = need_obj(payload.get("message"), f"{where} (API version 5.103 or later)")
    user = need_int(message, "from_id", where)
    ref = clean_ref(message.get("ref"))
    return Event(
        kind="start" if ref else "message",
        event_id=event_id,
        user_id=str(user),
        at=epoch(need_int(message, "date", where), 1, f"{where}.date"),
        event_type="message_new",
        ref=ref,
        text=opt_str(message, "text"),
        # The person wrote to the community in private: it may answer (24 h without intent).
        subscribes=opt_int(message, "peer_id") == user,
    )


def welcome_response(
    event: Event, text: str, sender_name: str | None = None
) -> dict[str, object] | None:
    """VK expects the plain text "ok" in every response; replies are messages.send calls."""
    return None


def webhook_setup(url: str, credentials: Mapping[str, str]) -> str:
    secret = credentials.get("secret", "<secret key>")
    confirmation = credentials.get("confirmation", "<confirmation string>")
    return (
        f"In the community: Manage > API usage > Callback API, add server {url} with API "
        f"version 5.199 and Secret key {secret}; the confirmation string shown there goes into "
        f"this channel's confirmation credential (now {confirmation}). Enable the events "
        "message_new, message_allow and message_deny."
    )
