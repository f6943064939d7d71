"""Properties of the identifiers people type and carry: short codes (case, Crockford look-alikes,
Unicode look-alikes), refs (make -> deep link -> back), and the redirect, which for any query
string or path sends people only to the messenger's own host.

Deep links of the adapters alone are covered by tests/messengers/test_properties.py; these
extend them with the refs and handles the service really makes (refs.make, channels.parse) and
with the whole redirect.
"""

from __future__ import annotations

import re
import string
import time
from collections import Counter
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from starlette.testclient import TestClient

from acquisition import channels, codes, messengers, refs, visitors
from acquisition.config import Settings
from acquisition.db import Database
from acquisition.errors import Invalid
from acquisition.messengers import whatsapp
from acquisition.models import Click
from acquisition.web.app import create_app
from tests.conftest import BASE_URL, drained
from tests.factories import make_channel, make_link
from tests.messengers.test_properties import HANDLES, HOSTS

CROCKFORD = st.sampled_from(codes.ALPHABET)
# What a person may type for each canonical character: either case, and O/I/L for 0/1.
TYPED = {
    **{c: c + c.lower() for c in codes.ALPHABET},
    "0": "0oO",
    "1": "1iIlL",
}
# Unicode characters that look like Latin letters or digits in most fonts.
LOOKALIKES = "аеорсухАВЕКМНОРСТХ0123456789ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ０１ＡＢｏ"


def typed(code: str) -> st.SearchStrategy[str]:
    return st.tuples(*(st.sampled_from(TYPED[c]) for c in code)).map("".join)


CODES = st.text(alphabet=codes.ALPHABET, min_size=codes.LENGTH, max_size=codes.LENGTH)
REFS = st.text(alphabet=codes.ALPHABET, min_size=refs.LENGTH, max_size=refs.LENGTH)


def test_generated_codes_and_refs_have_their_documented_form() -> None:
    for _ in range(2000):
        code, ref = codes.generate(), refs.make()
        assert len(code) == codes.LENGTH and set(code) <= set(codes.ALPHABET)
        assert codes.could_be_code(code) and codes.canonical(code) == code
        assert refs.PATTERN.fullmatch(ref) and refs.normalize(ref) == ref


@given(st.data())
def test_a_code_survives_any_case_and_crockford_misreading(data: st.DataObject) -> None:
    code = data.draw(CODES)
    as_typed = data.draw(typed(code))
    assert codes.lookalike(as_typed) == code
    assert codes.could_be_code(as_typed)


@given(st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=3, max_size=32))
def test_a_slug_is_case_insensitive_or_refused_the_same_way_in_any_case(raw: str) -> None:
    results = []
    for variant in (raw, raw.lower(), raw.upper()):
        try:
            results.append(codes.parse_slug(variant))
        except Invalid as error:
            assert error.field == "slug"
            results.append(None)
    assert len(set(results)) == 1
    slug = results[0]
    if slug is not None:
        assert slug == raw.upper() and codes.could_be_code(slug)
        assert slug not in codes.RESERVED


@given(st.text(min_size=3, max_size=32), st.sampled_from(LOOKALIKES), st.integers(0, 31))
def test_a_slug_with_a_unicode_lookalike_is_refused_and_never_matches_a_code(
    raw: str, lookalike: str, at: int
) -> None:
    spoofed = raw[: at % (len(raw) + 1)] + lookalike + raw[at % (len(raw) + 1) :]
    assume(not spoofed.isascii())
    with pytest.raises(Invalid):
        codes.parse_slug(spoofed)
    assert not codes.could_be_code(spoofed)  # the redirect answers 404 without a lookup


@given(st.text(max_size=80))
def test_parse_slug_accepts_only_the_documented_form(raw: str) -> None:
    try:
        slug = codes.parse_slug(raw)
    except Invalid:
        return
    assert codes.SLUG.fullmatch(slug) and slug.isascii() and slug == slug.upper()


@given(st.data())
def test_a_ref_survives_case_dashes_and_crockford_misreading(data: st.DataObject) -> None:
    ref = data.draw(REFS)
    assert refs.normalize(ref) == ref
    mangled = data.draw(typed(ref))
    cut = data.draw(st.integers(0, len(ref)))
    dashed = mangled[:cut] + "-" + mangled[cut:]
    assert refs.normalize(mangled) == ref
    assert refs.normalize(f"  {dashed} ") == ref


def test_refs_are_unique_enough() -> None:
    made = [refs.make() for _ in range(50_000)]
    assert len(set(made)) == len(made)


@given(st.integers(0, 2**20 - 2), st.integers(1, 2**20 - 1))
def test_ref_stamps_sort_like_time_within_a_cycle(step: int, later: int) -> None:
    """Refs of later clicks sort after earlier ones, so they land side by side in the index."""
    later = min(step + later, 2**20 - 1)
    assert refs.stamp(step) < refs.stamp(later)
    assert len(refs.stamp(step)) == refs.STAMP and set(refs.stamp(step)) <= set(codes.ALPHABET)


def test_a_ref_starts_with_the_stamp_of_its_moment() -> None:
    before = int(time.time() * 16)
    ref = refs.make()
    after = int(time.time() * 16)
    assert ref[: refs.STAMP] in {refs.stamp(before), refs.stamp(after)}
    suffixes = {refs.make()[refs.STAMP :] for _ in range(2000)}
    assert len(suffixes) == 2000  # the rest is random, not a counter or the clock
    letters = Counter("".join(suffixes))
    assert set(letters) == set(codes.ALPHABET)  # every letter turns up


@given(st.text(max_size=40))
def test_normalize_of_anything_is_none_or_a_canonical_ref(raw: str) -> None:
    got = refs.normalize(raw)
    assert got is None or (refs.PATTERN.fullmatch(got) and refs.normalize(got) == got)


@st.composite
def channel_and_ref(draw: st.DrawFn) -> tuple[str, str, str]:
    name = draw(st.sampled_from(messengers.NAMES))
    return name, draw(HANDLES[name]), draw(REFS)


@given(channel_and_ref(), st.none() | st.text(max_size=200))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_a_made_ref_goes_out_in_the_deep_link_and_comes_back_normalised(
    case: tuple[str, str, str], text: str | None
) -> None:
    """Handles as the API stores them (channels.parse), refs as the redirect makes them."""
    name, raw_handle, ref = case
    handle = channels.parse({"messenger": name, "handle": raw_handle}).handle
    link = messengers.get(name).deep_link(handle, ref, text)
    parts = urlsplit(link)
    scheme, host, param = HOSTS[name]
    assert (parts.scheme, parts.hostname) == (scheme, host)
    assert parts.username is None and parts.port is None
    [carried] = parse_qs(parts.query)[param]
    back = whatsapp.find_ref(carried) if name == "whatsapp" else carried
    assert back is not None and refs.normalize(back) == ref


@pytest.fixture
def app_settings(settings: Settings, tmp_path: Path) -> Settings:
    return replace(settings, spool_dir=str(tmp_path / "spool"))


QUERY_KEYS = st.sampled_from(
    ["next", "url", "redirect", "to", "c", "open", "w", "utm_source", "ref_url", "page", "x"]
)
HOSTILE = st.sampled_from(
    [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
        "https:evil.example",
        "\r\nLocation: https://evil.example",
        "%0d%0aLocation:%20https://evil.example",
    ]
)


def test_the_redirect_never_leaves_the_messengers_host(
    app_settings: Settings, db: Database
) -> None:
    telegram = make_channel(db, "telegram", "shop_bot")
    vk = make_channel(db, "vk", "mybakery")
    single = make_link(db, [telegram.id]).code
    multi = make_link(db, [telegram.id, vk.id]).code
    phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"
    with TestClient(
        create_app(app_settings, db), base_url=BASE_URL, follow_redirects=False
    ) as client:

        @given(
            st.sampled_from([single, multi]),
            st.lists(st.tuples(QUERY_KEYS, HOSTILE | st.text(max_size=50)), max_size=6),
            st.sampled_from(["", "/q", "/Q"]),
        )
        @settings(max_examples=150, deadline=None, database=None, derandomize=True)
        def visit(code: str, query: list[tuple[str, str]], prefix: str) -> None:
            path = f"{prefix}/{code}?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in query)
            r = client.get(path, headers={"user-agent": phone})
            assert r.status_code in (200, 302), r.text[:200]
            if r.status_code == 302:
                target = urlsplit(r.headers["location"])
                assert (target.scheme, target.hostname) in {("https", "t.me"), ("https", "vk.me")}
                assert "\n" not in r.headers["location"] and "evil" not in target.netloc
            else:  # the chooser: its buttons lead back to us, never elsewhere
                for href in re.findall(r'href="([^"]*)"', r.text):
                    assert href.startswith("/") and not href.startswith(("//", "/\\")), href

        visit()


@given(st.ip_addresses())
def test_an_anonymised_address_keeps_only_its_network(ip: IPv4Address | IPv6Address) -> None:
    stored = visitors.anonymize(str(ip))
    assert stored is not None
    prefix = 24 if ip.version == 4 or (ip.version == 6 and ip.ipv4_mapped) else 48
    network = ip_network(f"{getattr(ip, 'ipv4_mapped', None) or ip}/{prefix}", strict=False)
    assert ip_address(stored) == network.network_address


def _reference_anonymize(address: str) -> str | None:
    try:
        ip = ip_address(address)
    except ValueError:
        return None
    ip = getattr(ip, "ipv4_mapped", None) or ip
    return str(ip_network(f"{ip}/{24 if ip.version == 4 else 48}", strict=False).network_address)


@given(
    st.one_of(
        st.ip_addresses().map(str),
        st.from_regex(r"\A[0-9]{1,4}(\.[0-9]{1,4}){2,4}\Z"),  # near misses: 256, 01, five parts
        st.text(alphabet="0123456789.:abcdef \n\u0661", max_size=20),
    )
)
def test_anonymising_takes_exactly_the_addresses_ipaddress_takes(address: str) -> None:
    """The fast IPv4 path agrees with the ipaddress module on every input, valid or not."""
    assert visitors.anonymize(address) == _reference_anonymize(address)


def test_clicks_and_logs_keep_no_host_bits(app_settings: Settings, db: Database) -> None:
    """End to end: what a click stores, behind a trusted proxy and without one."""
    proxied = replace(app_settings, trusted_proxies=(ip_network("10.0.0.0/8"),))
    link = make_link(db, [make_channel(db).id]).code
    phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"
    cases = [
        (("203.0.113.77", 1), {}, "203.0.113.0"),
        (("2001:db8:1234:5678::1", 1), {}, "2001:db8:1234::"),
        (("10.1.1.1", 1), {"x-forwarded-for": "198.51.100.23"}, "198.51.100.0"),
        (("10.1.1.1", 1), {"x-forwarded-for": "8.8.8.8, 198.51.100.23"}, "198.51.100.0"),
    ]
    app = create_app(proxied, db)
    for peer, headers, expected in cases:
        with TestClient(app, base_url=BASE_URL, client=peer, follow_redirects=False) as visitor:
            r = visitor.get(f"/{link}", headers={"user-agent": phone, **headers})
            assert r.status_code == 302
            drained(visitor)
        with db.reader() as s:
            stored = s.scalars(select(Click.ip).order_by(Click.id.desc())).first()
        assert stored == expected, (peer, headers)
