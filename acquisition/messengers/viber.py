"""Viber bots: `viber://pa?chatURI=<uri>&context=<ref>` fires `conversation_started` with the
context on every tap, but that is not a subscription: the person subscribes with their first
message (or a `subscribed` callback). Bodies are signed with HMAC-SHA256 of the auth token."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from acquisition.errors import Invalid
from acquisition.messengers.base import (
    Event,
    Kind,
    bad,
    check_ref,
    clean_ref,
    epoch,
    hmac_hex_ok,
    link_parts,
    load_object,
    need_int,
    need_obj,
    need_str,
    opt_int,
    opt_obj,
    opt_str,
    plain,
    query_string,
)

NAME = "viber"
LABEL = "Viber"
PHONE_ONLY = True
HAS_PAYLOAD = True
CREDENTIALS: tuple[str, ...] = ("auth_token",)

# Viber documents no grammar for a bot's URI; public ones are short Latin slugs. Accept
# letters, digits, "_", "." and "-" (1-64), starting with a letter or digit: nothing that
# could break out of the query parameter it is placed in.
_URI = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_PERSON = {"conversation_started": "user", "subscribed": "user", "message": "sender"}


def normalize_handle(raw: str) -> str:
    """The bot's chatURI (case kept: Viber does not say it ignores case)."""
    value = plain(raw, "Viber bot URI")
    parts = link_parts(value, ("pa",), "Viber link")
    if parts is not None:
        _, _, params = parts
        value = params.get("chatURI") or params.get("uri") or ""
    if not _URI.fullmatch(value):
        raise Invalid(
            "expected the Viber bot URI (chatURI) such as mybakery or "
            "viber://pa?chatURI=mybakery: 1-64 Latin letters, digits, _, . or -",
            field="handle",
        )
    return value


def deep_link(handle: str, ref: str | None, text: str | None = None) -> str:
    params = {"chatURI": handle, "context": check_ref(ref), "text": text}
    return f"viber://pa?{query_string(params)}"


def verify(credentials: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> bool:
    return hmac_hex_ok(
        credentials.get("auth_token"), headers.get("x-viber-content-signature"), body
    )


def handshake(
    credentials: Mapping[str, str], query: Mapping[str, str], body: bytes | None
) -> str | None:
    return None


def parse(body: bytes, received_at: datetime | None = None) -> list[Event]:
    """One callback is one event."""
    data = load_object(body)
    event = need_str(data, "event", "body")
    timestamp = need_int(data, "timestamp", "body")
    at = epoch(timestamp, 1000, "body.timestamp")
    token = opt_int(data, "message_token")
    if "message_token" in data and token is None:
        raise bad("body.message_token must be an integer")
    kind: Kind = "ignored"
    ref: str | None = None
    text: str | None = None
    who = _PERSON.get(event)
    user = need_obj(data.get(who), f"body.{who}") if who else {}
    user_id = need_str(user, "id", f"body.{who}") if who else opt_str(data, "user_id") or ""
    if event == "conversation_started":
        kind, ref = "start", clean_ref(data.get("context"))
    elif event == "subscribed":
        kind = "optin"
    elif event == "message":
        kind, text = "message", opt_str(opt_obj(data, "message", "body"), "text")
    elif event == "unsubscribed":
        kind, user_id = "optout", need_str(data, "user_id", "body")
    return [
        Event(
            kind=kind,
            # delivered and seen of one message share its token, hence the event prefix
            event_id=f"{event}:{token}" if token is not None else f"{event}:{user_id}:{timestamp}",
            user_id=user_id,
            at=at,
            event_type=event,
            ref=ref,
            text=text,
            language=opt_str(user, "language"),
            user_name=opt_str(user, "name"),
            # conversation_started is explicitly not a subscription; a message is.
            subscribes=kind in ("optin", "message"),
        )
    ]


def welcome_response(
    event: Event, text: str, sender_name: str | None = None
) -> dict[str, object] | None:
    """Viber's one welcome message, sent as the response to conversation_started. Viber requires
    sender.name (max 28 characters) on bot messages, so pass the bot's display name."""
    if event.event_type != "conversation_started":
        return None
    welcome: dict[str, object] = {"type": "text", "text": text}
    if sender_name:
        welcome["sender"] = {"name": sender_name[:28]}
    return welcome


def webhook_setup(url: str, credentials: Mapping[str, str]) -> str:
    token = credentials.get("auth_token", "<auth token>")
    return (
        "POST https://chatapi.viber.com/pa/set_webhook with header X-Viber-Auth-Token: "
        f'{token} and body {{"url": "{url}", "event_types": ["conversation_started", '
        '"subscribed", "unsubscribed"], "send_name": true}.'
    )
