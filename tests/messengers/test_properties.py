"""Properties over all adapters: deep links stay on the messenger's own host and carry the ref
back; parse and verify never fail with anything but Invalid / False, whatever arrives."""

from __future__ import annotations

import copy
import json
from datetime import UTC
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import phonenumbers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acquisition import messengers
from acquisition.errors import Invalid
from acquisition.messengers import whatsapp
from acquisition.messengers.base import INBOUND_REF, REF_PATTERN, Event, Messenger

SAMPLES = Path(__file__).parents[1] / "samples"
HOSTS = {
    "telegram": ("https", "t.me", "start"),
    "whatsapp": ("https", "wa.me", "text"),
    "viber": ("viber", "pa", "context"),
    "messenger": ("https", "m.me", "ref"),
    "instagram": ("https", "ig.me", "ref"),
    "vk": ("https", "vk.me", "ref"),
    "max": ("https", "max.ru", "start"),
}
PHONES = sorted(
    phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    for region in phonenumbers.SUPPORTED_REGIONS
    if (number := phonenumbers.example_number(region)) is not None
)
HANDLES = {
    "telegram": st.from_regex(r"[A-Za-z][A-Za-z0-9_]{1,28}(bot|Bot|BOT|bOt)", fullmatch=True),
    "whatsapp": st.sampled_from(PHONES),
    "viber": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True),
    "messenger": st.from_regex(r"[A-Za-z0-9.]{5,50}", fullmatch=True),
    "instagram": st.from_regex(r"[a-z0-9._]{1,30}", fullmatch=True),
    "vk": st.from_regex(r"[a-z0-9_.]{2,32}", fullmatch=True),
    "max": st.from_regex(r"[A-Za-z0-9_]{3,64}", fullmatch=True),
}
REFS = st.from_regex(REF_PATTERN, fullmatch=True)
CROCKFORD_REFS = st.from_regex(r"[0-9A-HJKMNP-TV-Z]{12}", fullmatch=True)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
SAMPLE_FILES = sorted(SAMPLES.glob("*/*.json"))


@st.composite
def link_inputs(draw: st.DrawFn) -> tuple[Messenger, str, str, str | None]:
    name = draw(st.sampled_from(messengers.NAMES))
    ref = draw(CROCKFORD_REFS if name == "whatsapp" else REFS)
    text = draw(st.none() | st.text(max_size=200))
    return messengers.get(name), draw(HANDLES[name]), ref, text


@given(link_inputs())
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_deep_link_stays_on_the_messengers_host_and_carries_the_ref(
    case: tuple[Messenger, str, str, str | None],
) -> None:
    module, handle, ref, text = case
    assert module.normalize_handle(handle) == handle
    link = module.deep_link(handle, ref, text)
    parts = urlsplit(link)
    scheme, host, param = HOSTS[module.NAME]
    assert (parts.scheme, parts.hostname) == (scheme, host)
    assert not parts.fragment
    params = parse_qs(parts.query, keep_blank_values=True)
    if module.NAME == "whatsapp":
        [prefill] = params["text"]
        assert whatsapp.find_ref(prefill) == ref
    else:
        assert params[param] == [ref]
    if module.NAME in ("messenger", "viber") and text:
        assert params["text"] == [text]


@given(st.text(max_size=200), CROCKFORD_REFS)
def test_whatsapp_ref_survives_any_prefilled_text_and_case_change(text: str, ref: str) -> None:
    tagged = f"{text} {whatsapp.ref_tag(ref)}"
    assert whatsapp.find_ref(tagged) == ref
    assert whatsapp.find_ref(tagged.lower()) == ref


def check_events(events: list[Event]) -> None:
    for event in events:
        assert isinstance(event, Event)
        assert event.kind in ("start", "optin", "optout", "message", "ignored")
        assert isinstance(event.event_id, str) and event.event_id
        assert isinstance(event.user_id, str)
        assert event.at.utcoffset() is not None and event.at.tzinfo == UTC
        assert event.ref is None or INBOUND_REF.fullmatch(event.ref)


@given(st.sampled_from(messengers.NAMES), st.binary(max_size=300))
def test_parse_of_arbitrary_bytes_raises_only_invalid(name: str, body: bytes) -> None:
    try:
        check_events(messengers.get(name).parse(body))
    except Invalid as error:
        assert error.field == "body"


@given(st.sampled_from(messengers.NAMES), JSON)
def test_parse_of_arbitrary_json_raises_only_invalid(name: str, value: object) -> None:
    try:
        check_events(messengers.get(name).parse(json.dumps(value).encode()))
    except Invalid as error:
        assert error.field == "body"


def paths(value: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


@given(st.data())
@settings(max_examples=500)
def test_parse_of_a_mutated_real_sample_raises_only_invalid(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(SAMPLE_FILES))
    document = json.loads(path.read_bytes())
    where = data.draw(st.sampled_from(paths(document)[1:]))
    mutated = copy.deepcopy(document)
    parent = mutated
    for step in where[:-1]:
        parent = parent[step]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[where[-1]]
    else:
        parent[where[-1]] = data.draw(JSON)
    try:
        check_events(messengers.get(path.parent.name).parse(json.dumps(mutated).encode()))
    except Invalid as error:
        assert error.field == "body"


@given(
    st.sampled_from(messengers.NAMES),
    st.dictionaries(st.text(max_size=12), st.text(max_size=40), max_size=3),
    st.dictionaries(
        st.sampled_from(
            [
                "x-telegram-bot-api-secret-token",
                "x-hub-signature-256",
                "x-viber-content-signature",
                "x-max-bot-api-secret",
            ]
        ),
        st.text(max_size=80),
    ),
    st.binary(max_size=200),
)
def test_verify_of_arbitrary_input_is_a_plain_bool(
    name: str, credentials: dict[str, str], headers: dict[str, str], body: bytes
) -> None:
    assert messengers.get(name).verify(credentials, headers, body) in (True, False)


@given(link_inputs())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_without_a_ref_the_link_still_opens_the_chat_and_carries_no_placeholder(
    case: tuple[Messenger, str, str, str | None],
) -> None:
    module, handle, _ref, text = case
    parts = urlsplit(module.deep_link(handle, None, text))
    scheme, host, param = HOSTS[module.NAME]
    assert (parts.scheme, parts.hostname) == (scheme, host)
    params = parse_qs(parts.query, keep_blank_values=True)
    if module.NAME == "whatsapp":  # the prefilled text alone, no "(ref: …)" tag
        prefill = (text or "").strip()
        assert params.get("text") == ([prefill] if prefill else None)
    else:
        assert param not in params
    if module.NAME in ("messenger", "viber") and text:
        assert params["text"] == [text]


@given(link_inputs(), st.sampled_from([None, *messengers._PROBES]))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_the_redirects_cut_link_is_the_adapters_link_for_every_ref(
    case: tuple[Messenger, str, str, str | None], probe: str | None
) -> None:
    """The redirect pastes each ref into a link cut once per channel: it must be exactly the
    link the adapter builds, for any handle and text (one holding the probe ref, too)."""
    module, handle, ref, text = case
    if probe is not None and text is not None:
        text = f"{text}{probe}"  # the cut must not be fooled by a text that holds the probe
    build = messengers.destination(module.NAME, handle, text)
    for one in (ref, None, "0123456789AB"):
        assert build(one) == module.deep_link(handle, one, text)
