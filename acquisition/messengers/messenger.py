"""Facebook Messenger pages: `m.me/<page>?ref=<ref>` comes back as `referral.ref` (existing thread)
or `postback.referral.ref` (Get Started). Instagram Direct shares this webhook shape."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from acquisition.errors import Invalid
from acquisition.messengers.base import (
    Event,
    Kind,
    Obj,
    bad,
    check_ref,
    clean_ref,
    epoch,
    link_parts,
    load_object,
    meta_handshake,
    meta_verify,
    need_int,
    need_obj,
    need_str,
    obj_list,
    opt_obj,
    opt_str,
    plain,
    segment,
    with_query,
)

NAME = "messenger"
LABEL = "Facebook Messenger"
PHONE_ONLY = False
HAS_PAYLOAD = True
CREDENTIALS: tuple[str, ...] = ("app_secret", "verify_token")

_PAGE = re.compile(r"[A-Za-z0-9.]{5,50}")  # also covers numeric page ids


def normalize_handle(raw: str) -> str:
    """A page username or numeric page id (case kept; m.me ignores case)."""
    value = plain(raw, "Facebook page")
    parts = link_parts(value, ("m.me", "facebook.com", "m.facebook.com"), "Messenger link")
    if parts is not None:
        _, segments, _ = parts
        value = segments[0] if len(segments) == 1 else ""
    value = value.removeprefix("@")
    if not _PAGE.fullmatch(value):
        raise Invalid(
            "expected a Facebook page username or page id such as mybakery or "
            "https://m.me/mybakery: 5-50 Latin letters, digits or dots",
            field="handle",
        )
    return value


def deep_link(handle: str, ref: str | None, text: str | None = None) -> str:
    return with_query(f"https://m.me/{segment(handle)}", {"ref": check_ref(ref), "text": text})


def verify(credentials: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> bool:
    return meta_verify(credentials, headers, body)


def handshake(
    credentials: Mapping[str, str], query: Mapping[str, str], body: bytes | None
) -> str | None:
    return meta_handshake(credentials, query)


def parse(body: bytes, received_at: datetime | None = None) -> list[Event]:
    return parse_messaging(body, "page")


def parse_messaging(body: bytes, expected_object: str) -> list[Event]:
    """Every `entry[].messaging[]` item of a Messenger or Instagram delivery, one event each."""
    data = load_object(body)
    if data.get("object") != expected_object:
        raise bad(f"body.object must be {expected_object!r}")
    return [
        _item(item)
        for entry in obj_list(data, "entry", "body", required=True)
        for item in obj_list(entry, "messaging", "body.entry[]")
    ]


def _item(item: Obj) -> Event:
    where = "body.entry[].messaging[]"
    user = need_str(need_obj(item.get("sender"), f"{where}.sender"), "id", f"{where}.sender")
    timestamp = need_int(item, "timestamp", where)
    at = epoch(timestamp, 1000, f"{where}.timestamp")
    message, postback = opt_obj(item, "message", where), opt_obj(item, "postback", where)
    referral, optin = opt_obj(item, "referral", where), opt_obj(item, "optin", where)
    kind: Kind = "ignored"
    ref: str | None = None
    text: str | None = None
    mid: str | None = None
    others = (key for key in item if key not in ("sender", "recipient", "timestamp"))
    event_type = next(others, "unknown")  # read, delivery, reaction, ...
    if message is not None:
        # Echoes are the page's own messages coming back, not the person's.
        kind = "ignored" if message.get("is_echo") is True else "message"
        event_type, text, mid = "message", opt_str(message, "text"), opt_str(message, "mid")
    elif postback is not None:
        referral = opt_obj(postback, "referral", f"{where}.postback")
        kind = "start" if referral is not None else "message"
        event_type, text, mid = "postback", opt_str(postback, "title"), opt_str(postback, "mid")
        ref = clean_ref(opt_str(referral, "ref"))
    elif referral is not None:
        kind, event_type, ref = "start", "referral", clean_ref(referral.get("ref"))
    elif optin is not None:
        stopped = opt_str(optin, "notification_messages_status") == "STOP NOTIFICATIONS"
        kind = "optout" if stopped else "optin"
        event_type, ref = "optin", clean_ref(optin.get("ref"))  # ref: Send to Messenger plugin
    return Event(
        kind=kind,
        event_id=mid or f"{user}:{timestamp}:{kind}",
        user_id=user,
        at=at,
        event_type=event_type,
        ref=ref,
        text=text,
        # The person opened or wrote in the thread: the page may answer (24 h window).
        subscribes=kind in ("start", "optin", "message"),
    )


def welcome_response(
    event: Event, text: str, sender_name: str | None = None
) -> dict[str, object] | None:
    """Send API calls are separate requests; a webhook response cannot carry one."""
    return None


def webhook_setup(url: str, credentials: Mapping[str, str]) -> str:
    token = credentials.get("verify_token", "<verify token>")
    return (
        f"In the Meta App Dashboard, Messenger > Webhooks: set Callback URL {url} and Verify token "
        f"{token}, then subscribe the page to messages, messaging_referrals, messaging_postbacks "
        "and messaging_optins."
    )
