"""Instagram Direct: `ig.me/m/<user>?ref=<ref>` comes back in `postback.referral.ref` (Icebreaker)
or `referral.ref`; same Meta signature and webhook envelope as Messenger. Not on Instagram Web."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from acquisition.errors import Invalid
from acquisition.messengers.base import (
    Event,
    check_ref,
    link_parts,
    meta_handshake,
    meta_verify,
    plain,
    segment,
    with_query,
)
from acquisition.messengers.messenger import parse_messaging

NAME = "instagram"
LABEL = "Instagram"
PHONE_ONLY = True
HAS_PAYLOAD = True
CREDENTIALS: tuple[str, ...] = ("app_secret", "verify_token")

_USERNAME = re.compile(r"[a-z0-9._]{1,30}")


def normalize_handle(raw: str) -> str:
    """The account's username, lower-cased as Instagram stores it."""
    value = plain(raw, "Instagram username")
    parts = link_parts(value, ("ig.me", "instagram.com"), "Instagram link")
    if parts is not None:
        host, segments, _ = parts
        prefix = ["m"] if host == "ig.me" else []  # ig.me/m/<user>, instagram.com/<user>
        value = segments[-1] if segments[:-1] == prefix and segments else ""
    value = value.removeprefix("@").lower()
    if not _USERNAME.fullmatch(value):
        raise Invalid(
            "expected an Instagram username such as @my.bakery or https://ig.me/m/my.bakery: "
            "up to 30 Latin letters, digits, dots or underscores",
            field="handle",
        )
    return value


def deep_link(handle: str, ref: str | None, text: str | None = None) -> str:
    """ig.me documents no prefilled text, so `text` is ignored."""
    return with_query(f"https://ig.me/m/{segment(handle)}", {"ref": check_ref(ref)})


def verify(credentials: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> bool:
    return meta_verify(credentials, headers, body)


def handshake(
    credentials: Mapping[str, str], query: Mapping[str, str], body: bytes | None
) -> str | None:
    return meta_handshake(credentials, query)


def parse(body: bytes, received_at: datetime | None = None) -> list[Event]:
    return parse_messaging(body, "instagram")


def welcome_response(
    event: Event, text: str, sender_name: str | None = None
) -> dict[str, object] | None:
    """Send API calls are separate requests; a webhook response cannot carry one."""
    return None


def webhook_setup(url: str, credentials: Mapping[str, str]) -> str:
    token = credentials.get("verify_token", "<verify token>")
    return (
        f"In the Meta App Dashboard, Instagram > Webhooks: set Callback URL {url} and Verify "
        f"token {token}, then subscribe to messages, messaging_postbacks and messaging_referral."
    )
