"""Webhook deliveries as each platform sends them: the sample bodies of tests/samples with our
own ids, refs and times put in, signed the way the platform signs them."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

SAMPLES = Path(__file__).parent / "samples"
MESSENGERS = ("telegram", "whatsapp", "messenger", "instagram", "viber", "vk", "max")
META = ("whatsapp", "messenger", "instagram")
HANDLES = {
    "telegram": "shop_bot",
    "whatsapp": "+7 916 000-11-22",
    "messenger": "mybakery",
    "instagram": "my.bakery",
    "viber": "mybakery",
    "vk": "mybakery",
    "max": "shop_bot",
}
CREDENTIALS = {
    "telegram": {"secret": "tg-secret_0123456789"},
    "whatsapp": {"app_secret": "wa-app-secret-0123", "verify_token": "wa-verify-token"},
    "messenger": {"app_secret": "fb-app-secret-0123", "verify_token": "fb-verify-token"},
    "instagram": {"app_secret": "ig-app-secret-0123", "verify_token": "ig-verify-token"},
    "viber": {"auth_token": "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"},
    "vk": {"secret": "vk-secret-0123", "confirmation": "a1b2c3d4"},
    "max": {"secret": "max-secret_0123"},
}
USER = {
    "telegram": 111222333,
    "whatsapp": "79161234567",
    "messenger": "6543210987654321",
    "instagram": "987654321012345",
    "viber": "01234567890A=",
    "vk": 612444319,
    "max": 1234567890,
}
T0 = 1767225600  # 2026-01-01T00:00:00Z


def sample(messenger: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / messenger / name).read_text())
    return data


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def sign(messenger: str, raw: bytes, credentials: dict[str, str] | None = None) -> dict[str, str]:
    creds = CREDENTIALS[messenger] if credentials is None else credentials
    headers = {"content-type": "application/json"}
    if messenger == "telegram":
        headers["x-telegram-bot-api-secret-token"] = creds["secret"]
    elif messenger == "max":
        headers["x-max-bot-api-secret"] = creds["secret"]
    elif messenger in META:
        digest = hmac.new(creds["app_secret"].encode(), raw, hashlib.sha256).hexdigest()
        headers["x-hub-signature-256"] = f"sha256={digest}"
    elif messenger == "viber":
        digest = hmac.new(creds["auth_token"].encode(), raw, hashlib.sha256).hexdigest()
        headers["x-viber-content-signature"] = digest
    return headers  # VK: the secret travels in the body


def start(messenger: str, ref: str | None, n: int = 1, at: int = T0, user: Any = None) -> dict:
    """The platform's start signal carrying `ref` (the n-th delivery, at `at` seconds)."""
    user = USER[messenger] if user is None else user
    if messenger == "telegram":
        body = sample("telegram", "start.json")
        body["update_id"] = 900000000 + n
        body["message"].update(date=at, text=f"/start {ref}" if ref else "/start")
        body["message"]["from"]["id"] = body["message"]["chat"]["id"] = user
    elif messenger == "whatsapp":
        body = sample("whatsapp", "text_with_ref.json")
        value = body["entry"][0]["changes"][0]["value"]
        value["contacts"][0]["wa_id"] = user
        text = f"Hello! I want the summer offer (ref: {ref})" if ref else "Hello!"
        value["messages"][0].update(
            {"from": user, "id": f"wamid.{n}", "timestamp": str(at), "text": {"body": text}}
        )
    elif messenger in ("messenger", "instagram"):
        name = "referral.json" if messenger == "messenger" else "postback_icebreaker.json"
        body = sample(messenger, name)
        item = body["entry"][0]["messaging"][0]
        item["sender"]["id"], item["timestamp"] = user, at * 1000 + n
        referral = item["referral"] if messenger == "messenger" else item["postback"]["referral"]
        if messenger == "instagram":
            item["postback"]["mid"] = f"ig-mid-{n}"
        referral["ref"] = ref
    elif messenger == "viber":
        body = sample("viber", "conversation_started.json")
        body.update(timestamp=at * 1000, message_token=5000 + n, context=ref)
        body["user"]["id"] = user
    elif messenger == "vk":
        body = sample("vk", "message_new.json")
        body["event_id"] = f"vk-event-{n}"
        body["object"]["message"].update(date=at, from_id=user, peer_id=user, ref=ref)
    else:
        body = sample("max", "bot_started.json")
        body.update(timestamp=at * 1000 + n, payload=ref)
        body["user"]["user_id"] = user
    return _secret(messenger, body)


def message(messenger: str, n: int = 1, at: int = T0, user: Any = None) -> dict:
    """A plain message from the person (Viber: this is what subscribes them)."""
    user = USER[messenger] if user is None else user
    if messenger == "telegram":
        body = sample("telegram", "text_message.json")
        body["update_id"] = 900000000 + n
        body["message"].update(date=at)
        body["message"]["from"]["id"] = body["message"]["chat"]["id"] = user
    elif messenger == "viber":
        body = sample("viber", "message.json")
        body.update(timestamp=at * 1000, message_token=5000 + n)
        body["sender"]["id"] = user
    elif messenger == "whatsapp":
        body = start("whatsapp", None, n, at, user)
    else:
        raise ValueError(messenger)
    return _secret(messenger, body)


def optout(messenger: str, n: int = 1, at: int = T0, user: Any = None) -> dict:
    """The platform's opt-out signal (block, unsubscribe, deny, stop)."""
    user = USER[messenger] if user is None else user
    if messenger == "telegram":
        body = sample("telegram", "blocked.json")
        body["update_id"] = 900000000 + n
        body["my_chat_member"]["date"] = at
        body["my_chat_member"]["from"]["id"] = body["my_chat_member"]["chat"]["id"] = user
    elif messenger == "whatsapp":
        body = sample("whatsapp", "user_preferences_stop.json")
        value = body["entry"][0]["changes"][0]["value"]
        value["contacts"][0]["wa_id"] = user
        value["user_preferences"][0].update(wa_id=user, timestamp=at)
    elif messenger == "messenger":
        body = sample("messenger", "optin_stop.json")
        item = body["entry"][0]["messaging"][0]
        item["sender"]["id"], item["timestamp"] = user, at * 1000 + n
    elif messenger == "viber":
        body = sample("viber", "unsubscribed.json")
        body.update(timestamp=at * 1000, message_token=5000 + n, user_id=user)
    elif messenger == "vk":
        body = sample("vk", "message_deny.json")
        body["event_id"] = f"vk-deny-{n}"
        body["object"]["user_id"] = user
    elif messenger == "max":
        body = sample("max", "bot_stopped.json")
        body.update(timestamp=at * 1000 + n)
        body["user"]["user_id"] = user
    else:
        raise ValueError(f"{messenger} has no opt-out signal")
    return _secret(messenger, body)


def unblock(n: int = 1, at: int = T0, user: Any = None) -> dict:
    body = sample("telegram", "unblocked.json")
    body["update_id"] = 900000000 + n
    body["my_chat_member"]["date"] = at
    user = USER["telegram"] if user is None else user
    body["my_chat_member"]["from"]["id"] = body["my_chat_member"]["chat"]["id"] = user
    return body


def _secret(messenger: str, body: dict[str, Any]) -> dict[str, Any]:
    if messenger == "vk":
        body = copy.deepcopy(body)
        body["secret"] = CREDENTIALS["vk"]["secret"]
    return body


def post(
    client: TestClient,
    messenger: str,
    channel_id: int,
    body: dict | bytes,
    headers: dict[str, str] | None = None,
) -> Any:
    """POST a delivery signed as the platform would sign it (unless `headers` is given)."""
    raw = body if isinstance(body, bytes) else encode(body)
    return client.post(
        f"/hooks/{messenger}/{channel_id}",
        content=raw,
        headers=sign(messenger, raw) if headers is None else headers,
    )


PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


def ref_from(location: str) -> str:
    """The ref our redirect put into a messenger deep link."""
    from urllib.parse import parse_qs, urlsplit

    from acquisition.messengers import whatsapp

    query = parse_qs(urlsplit(location).query)
    for key in ("start", "ref", "context"):
        if key in query:
            return query[key][0]
    found = whatsapp.find_ref(query["text"][0])
    assert found is not None, location
    return found
