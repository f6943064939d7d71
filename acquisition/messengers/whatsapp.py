"""WhatsApp (click-to-chat + Cloud API webhooks). wa.me carries no payload, only prefilled text the
person may edit, so the ref travels as a visible tag and is searched for in their first message."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime

import phonenumbers

from acquisition.errors import Invalid
from acquisition.messengers.base import (
    Event,
    Kind,
    Obj,
    bad,
    check_ref,
    epoch,
    fallback_time,
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

NAME = "whatsapp"
LABEL = "WhatsApp"
PHONE_ONLY = False
HAS_PAYLOAD = False
CREDENTIALS: tuple[str, ...] = ("app_secret", "verify_token")

_PHONE = re.compile(r"\+?[0-9][0-9 ().-]*")
_CROCKFORD = re.compile(r"[0-9A-HJKMNP-TV-Z]{12}")
# Only the "ref" label is case-insensitive: an IGNORECASE class would also admit look-alikes
# such as the Kelvin sign for "K".
_TAG = re.compile(r"\(\s*(?i:ref)\s*[:#]?\s*([A-Za-z0-9_-]{1,32})\s*\)")
_LABELLED = re.compile(r"\b(?i:ref)\b[\s:#=-]*((?:[0-9A-Za-z][ -]?){11}[0-9A-Za-z])(?![0-9A-Za-z])")
_TOKEN = re.compile(r"(?<![0-9A-Za-z])[0-9A-Za-z]{12}(?![0-9A-Za-z])")
_LOOKALIKES = str.maketrans("OIL", "011")
_EXPECTED = (
    "expected the number in international format with its country code, e.g. +7 916 123-45-67"
)


def normalize_handle(raw: str) -> str:
    """The business number as E.164 digits without "+", the form wa.me expects."""
    value = "".join(_ascii_punctuation(char) for char in raw)
    value = plain(value, "WhatsApp number", spaces_ok=True)
    parts = link_parts(value, ("wa.me", "api.whatsapp.com"), "WhatsApp link")
    if parts is not None:
        _, segments, params = parts
        value = params.get("phone", "") if segments == ["send"] else "/".join(segments)
    value = "+" + value[2:] if value.startswith("00") else value
    if not _PHONE.fullmatch(value):
        raise Invalid(_EXPECTED, field="handle")
    try:
        number = phonenumbers.parse(value if value.startswith("+") else f"+{value}", None)
    except phonenumbers.NumberParseException as exc:
        raise Invalid(_EXPECTED, field="handle") from exc
    if not phonenumbers.is_valid_number(number):
        raise Invalid(f"{value} is not a valid phone number; {_EXPECTED}", field="handle")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


def _ascii_punctuation(char: str) -> str:
    """Pasted numbers often carry no-break spaces and typographic dashes."""
    category = unicodedata.category(char)
    return " " if category == "Zs" else "-" if category == "Pd" else char


def ref_tag(ref: str) -> str:
    """The visible code appended to the prefilled text."""
    return f"(ref: {check_ref(ref)})"


def find_ref(text: str) -> str | None:
    """Recover a ref from a message the person may have edited. Tried in order, last match wins
    (our tag ends the text): the intact tag; a 12-character code after a "ref" label, spaces
    allowed; then a bare 12-character code mixing letters with digits or all in capitals, so
    ordinary words and phone numbers are not taken for one. Codes are Crockford base32, read
    with O as 0 and I/L as 1."""
    tags = _TAG.findall(text)
    if tags:
        return _crockford(tags[-1]) or tags[-1]
    for found in reversed(_LABELLED.findall(text)):
        code = _crockford(re.sub(r"[ -]", "", found))
        if code:
            return code
    for token in reversed(_TOKEN.findall(text)):
        code = _crockford(token)
        has_digit = any(char.isdigit() for char in token)
        if code and not token.isdigit() and (has_digit or token.isupper()):
            return code
    return None


def _crockford(candidate: str) -> str | None:
    code = candidate.upper().translate(_LOOKALIKES)
    return code if _CROCKFORD.fullmatch(code) else None


def deep_link(handle: str, ref: str | None, text: str | None = None) -> str:
    parts = ((text or "").strip(), ref_tag(ref) if ref is not None else "")
    return with_query(f"https://wa.me/{segment(handle)}", {"text": " ".join(p for p in parts if p)})


def verify(credentials: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> bool:
    return meta_verify(credentials, headers, body)


def handshake(
    credentials: Mapping[str, str], query: Mapping[str, str], body: bytes | None
) -> str | None:
    return meta_handshake(credentials, query)


_VALUE = "body.entry[].changes[].value"


def parse(body: bytes, received_at: datetime | None = None) -> list[Event]:
    """Inbound messages (the person wrote first) and marketing stop/resume; the rest is ignored."""
    data = load_object(body)
    if data.get("object") != "whatsapp_business_account":
        raise bad("body.object must be 'whatsapp_business_account'")
    events: list[Event] = []
    for entry in obj_list(data, "entry", "body", required=True):
        for number, change in enumerate(obj_list(entry, "changes", "body.entry[]")):
            field = need_str(change, "field", "body.entry[].changes[]")
            value = need_obj(change.get("value"), "body.entry[].changes[].value")
            if field == "messages":
                events += _messages(value)
            elif field == "user_preferences":
                events += [_preference(item) for item in obj_list(value, field, _VALUE)]
            else:
                # Other fields carry no id of their own: key them by the delivery's digest.
                event_id = f"{field}:{hashlib.sha256(body).hexdigest()[:16]}:{number}"
                events.append(Event("ignored", event_id, "", fallback_time(received_at), field))
    return events


def _messages(value: Obj) -> list[Event]:
    names = {
        opt_str(contact, "wa_id"): opt_str(opt_obj(contact, "profile", _VALUE), "name")
        for contact in obj_list(value, "contacts", _VALUE)
    }
    events = []
    for message in obj_list(value, "messages", _VALUE):
        where = f"{_VALUE}.messages[]"
        user = need_str(message, "from", where)
        text = opt_str(opt_obj(message, "text", where), "body")
        ref = find_ref(text) if text else None
        event = Event(
            kind="start" if ref else "message",
            event_id=need_str(message, "id", where),
            user_id=user,
            at=_seconds(message, where),
            event_type="messages",
            ref=ref,
            text=text,
            user_name=names.get(user),
            subscribes=True,  # the person wrote first: a 24 h reply window opens
        )
        events.append(event)
    for status in obj_list(value, "statuses", _VALUE):
        where = f"{_VALUE}.statuses[]"
        event_id = f"status:{need_str(status, 'id', where)}:{opt_str(status, 'status')}"
        user = opt_str(status, "recipient_id") or ""
        events.append(Event("ignored", event_id, user, _seconds(status, where), "statuses"))
    return events


def _preference(item: Obj) -> Event:
    where = f"{_VALUE}.user_preferences[]"
    user = need_str(item, "wa_id", where)
    at = _seconds(item, where)
    choice = opt_str(item, "value")
    kind: Kind = "ignored"
    if opt_str(item, "category") == "marketing_messages":
        kind = "optout" if choice == "stop" else "optin" if choice == "resume" else "ignored"
    event_id = f"{user}:{int(at.timestamp())}:{kind}"
    return Event(kind, event_id, user, at, "user_preferences", subscribes=kind == "optin")


def _seconds(parent: Obj, where: str) -> datetime:
    """WhatsApp sends message times as digit strings and preference times as integers."""
    value = parent.get("timestamp")
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value):
        return epoch(int(value), 1, f"{where}.timestamp")
    return epoch(need_int(parent, "timestamp", where), 1, f"{where}.timestamp")


def welcome_response(
    event: Event, text: str, sender_name: str | None = None
) -> dict[str, object] | None:
    """Cloud API replies are separate API calls; a webhook response cannot carry one."""
    return None


def webhook_setup(url: str, credentials: Mapping[str, str]) -> str:
    token = credentials.get("verify_token", "<verify token>")
    return (
        f"In the Meta App Dashboard, WhatsApp > Configuration: set Callback URL {url} and "
        f"Verify token {token}, then subscribe to the webhook fields messages and user_preferences."
    )
