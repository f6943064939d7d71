"""Telegram bots: `t.me/<bot>?start=<ref>` comes back as the text `/start <ref>`; the webhook is
authenticated by the secret_token header; blocking the bot is `my_chat_member` -> `kicked`."""

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
    fallback_time,
    link_parts,
    load_object,
    loose,
    need_int,
    need_obj,
    opt_int,
    opt_str,
    plain,
    same_secret,
    segment,
    with_query,
)

NAME = "telegram"
LABEL = "Telegram"
PHONE_ONLY = False
HAS_PAYLOAD = True
CREDENTIALS: tuple[str, ...] = ("secret",)

_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{1,28}[Bb][Oo][Tt]")  # 5-32 chars in all
_START = re.compile(r"/start(?:@[A-Za-z0-9_]{1,64})?(?:\s+(.*))?", re.DOTALL)


def normalize_handle(raw: str) -> str:
    """The bot's username as Telegram shows it (case kept; t.me ignores case)."""
    value = plain(raw, "Telegram bot username")
    parts = link_parts(value, ("t.me", "telegram.me", "telegram.dog"), "Telegram bot link")
    if parts is not None:
        _, segments, _ = parts
        value = segments[0] if len(segments) == 1 else ""
    value = value.removeprefix("@")
    if not _USERNAME.fullmatch(value):
        raise Invalid(
            "expected a Telegram bot username such as @shop_bot or https://t.me/shop_bot: "
            "5-32 Latin letters, digits or _, starting with a letter and ending in 'bot'",
            field="handle",
        )
    return value


def deep_link(handle: str, ref: str | None, text: str | None = None) -> str:
    """t.me cannot prefill text for bots, so `text` is ignored."""
    return with_query(f"https://t.me/{segment(handle)}", {"start": check_ref(ref)})


def verify(credentials: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> bool:
    return same_secret(credentials.get("secret"), headers.get("x-telegram-bot-api-secret-token"))


def handshake(
    credentials: Mapping[str, str], query: Mapping[str, str], body: bytes | None
) -> str | None:
    return None


def parse(body: bytes, received_at: datetime | None = None) -> list[Event]:
    """One update is one event; only `message` and private `my_chat_member` matter."""
    update = load_object(body)
    event_id = f"u{need_int(update, 'update_id', 'body')}"
    if "message" in update:
        return [_message(event_id, need_obj(update["message"], "body.message"))]
    if "my_chat_member" in update:
        return [_member(event_id, need_obj(update["my_chat_member"], "body.my_chat_member"))]
    event_type = next((key for key in update if key != "update_id"), "update")
    inner = loose(update.get(event_type))
    user_id = opt_int(loose(inner.get("from")), "id")
    date = opt_int(inner, "date")
    at = epoch(date, 1, "body.date") if date is not None else fallback_time(received_at)
    return [Event("ignored", event_id, "" if user_id is None else str(user_id), at, event_type)]


def _message(event_id: str, message: Obj) -> Event:
    sender = need_obj(message.get("from"), "body.message.from")
    chat = need_obj(message.get("chat"), "body.message.chat")
    at = epoch(need_int(message, "date", "body.message"), 1, "body.message.date")
    text = opt_str(message, "text")
    start = _START.fullmatch(text) if text is not None else None
    kind: Kind = "start" if start else "message"
    return Event(
        kind=kind,
        event_id=event_id,
        user_id=str(need_int(sender, "id", "body.message.from")),
        at=at,
        event_type="message",
        ref=clean_ref((start.group(1) or "").strip()) if start else None,
        text=text,
        language=opt_str(sender, "language_code"),
        user_name=_name(sender),
        # A bot may write only to people who opened a private chat with it.
        subscribes=chat.get("type") == "private",
    )


def _member(event_id: str, update: Obj) -> Event:
    where = "body.my_chat_member"
    sender = need_obj(update.get("from"), f"{where}.from")
    chat = need_obj(update.get("chat"), f"{where}.chat")
    new = need_obj(update.get("new_chat_member"), f"{where}.new_chat_member")
    status = opt_str(new, "status")
    kind: Kind = "ignored"
    if chat.get("type") == "private":  # in groups this is the bot being added or removed
        kind = "optout" if status == "kicked" else "optin" if status == "member" else "ignored"
    return Event(
        kind=kind,
        event_id=event_id,
        user_id=str(need_int(sender, "id", f"{where}.from")),
        at=epoch(need_int(update, "date", where), 1, f"{where}.date"),
        event_type="my_chat_member",
        language=opt_str(sender, "language_code"),
        user_name=_name(sender),
        subscribes=kind == "optin",
    )


def _name(user: Obj) -> str | None:
    name = " ".join(
        part for part in (opt_str(user, "first_name"), opt_str(user, "last_name")) if part
    )
    return name or None


def welcome_response(
    event: Event, text: str, sender_name: str | None = None
) -> dict[str, object] | None:
    """Telegram runs a Bot API method returned in the webhook response: answer a private start."""
    if event.kind != "start" or not event.subscribes:
        return None
    return {"method": "sendMessage", "chat_id": int(event.user_id), "text": text}


def webhook_setup(url: str, credentials: Mapping[str, str]) -> str:
    secret = credentials.get("secret", "<secret>")
    return (
        f"Call https://api.telegram.org/bot<token>/setWebhook with url={url}, "
        f'secret_token={secret} and allowed_updates=["message","my_chat_member"].'
    )
