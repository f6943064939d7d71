"""MAX bots (VK's messenger): `max.ru/<bot>?start=<ref>` comes back as `bot_started.payload`;
the webhook carries the subscription secret in `X-Max-Bot-Api-Secret`; `bot_stopped` opts out."""

from __future__ import annotations

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
    link_parts,
    load_object,
    loose,
    need_int,
    need_obj,
    need_str,
    opt_int,
    opt_obj,
    opt_str,
    plain,
    same_secret,
    segment,
    with_query,
)

NAME = "max"
LABEL = "MAX"
PHONE_ONLY = True
HAS_PAYLOAD = True
CREDENTIALS: tuple[str, ...] = ("secret",)

_BOT = re.compile(r"[A-Za-z0-9_]{3,64}")


def normalize_handle(raw: str) -> str:
    """The bot's name as in its max.ru link (case kept)."""
    value = plain(raw, "MAX bot name")
    parts = link_parts(value, ("max.ru",), "MAX link")
    if parts is not None:
        _, segments, _ = parts
        legacy = len(segments) == 3 and segments[1] == "start"  # max.ru/<bot>/start/<payload>
        value = segments[0] if len(segments) == 1 or legacy else ""
    value = value.removeprefix("@")
    if not _BOT.fullmatch(value):
        raise Invalid(
            "expected a MAX bot name such as shop_bot or https://max.ru/shop_bot: "
            "3-64 Latin letters, digits or _",
            field="handle",
        )
    return value


def deep_link(handle: str, ref: str | None, text: str | None = None) -> str:
    """max.ru cannot prefill text for bots, so `text` is ignored."""
    return with_query(f"https://max.ru/{segment(handle)}", {"start": check_ref(ref)})


def verify(credentials: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> bool:
    return same_secret(credentials.get("secret"), headers.get("x-max-bot-api-secret"))


def handshake(
    credentials: Mapping[str, str], query: Mapping[str, str], body: bytes | None
) -> str | None:
    return None


def parse(body: bytes, received_at: datetime | None = None) -> list[Event]:
    """One update is one event."""
    update = load_object(body)
    update_type = need_str(update, "update_type", "body")
    timestamp = need_int(update, "timestamp", "body")
    kind: Kind = "ignored"
    ref: str | None = None
    text: str | None = None
    subscribes = False
    if update_type in ("bot_started", "bot_stopped"):
        user = need_obj(update.get("user"), "body.user")
        user_id = need_int(user, "user_id", "body.user")
        kind = "start" if update_type == "bot_started" else "optout"
        ref, subscribes = clean_ref(update.get("payload")), kind == "start"
    elif update_type == "message_created":
        message = need_obj(update.get("message"), "body.message")
        user = need_obj(message.get("sender"), "body.message.sender")
        user_id = need_int(user, "user_id", "body.message.sender")
        kind, text = "message", opt_str(opt_obj(message, "body", "body.message"), "text")
        # In a dialog the person wrote to the bot first, so the bot may answer.
        subscribes = opt_str(loose(message.get("recipient")), "chat_type") == "dialog"
    else:
        user = _anyone(update)
        user_id = opt_int(user, "user_id") or 0
    user_key = str(user_id) if user_id else ""
    return [
        Event(
            kind=kind,
            event_id=f"{update_type}:{user_key}:{timestamp}",
            user_id=user_key,
            at=epoch(timestamp, 1000, "body.timestamp"),
            event_type=update_type,
            ref=ref,
            text=text,
            language=opt_str(update, "user_locale"),
            user_name=opt_str(user, "name"),
            subscribes=subscribes,
        )
    ]


def _anyone(update: Obj) -> Obj:
    """The person behind an update we only log: `user`, or the sender of its message/callback."""
    for found in (update.get("user"), loose(update.get("message")).get("sender")):
        if isinstance(found, dict):
            return found
    return loose(loose(update.get("callback")).get("user"))


def welcome_response(
    event: Event, text: str, sender_name: str | None = None
) -> dict[str, object] | None:
    """MAX replies are separate API calls; a webhook response cannot carry one."""
    return None


def webhook_setup(url: str, credentials: Mapping[str, str]) -> str:
    secret = credentials.get("secret", "<secret>")
    return (
        "POST https://platform-api2.max.ru/subscriptions with the bot token in the Authorization "
        f'header and body {{"url": "{url}", "update_types": ["bot_started", "bot_stopped", '
        f'"message_created"], "secret": "{secret}"}}.'
    )
