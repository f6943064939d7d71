"""Hostile and malformed input for every endpoint kind, from one table: each case must get a 4xx
(problem+json naming the field, where there is one; the public pages answer their HTML 404),
never a 5xx, and leave every table exactly as it was, on SQLite and PostgreSQL.

Run with `-s` to see how many cases each endpoint kind tried.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from acquisition import accounts
from acquisition.db import Database
from acquisition.models import Base
from tests import deliveries as d
from tests.conftest import drained
from tests.factories import make_channel, make_link

NOTHING: Any = object()
BIG = 3 * 1024 * 1024  # over the 2 MiB body limit
CYRILLIC_A = "\u0430"  # looks like a Latin a
ZERO_WIDTH = "\u200b"
RTL_OVERRIDE = "\u202e"
SQL = "x'); DROP TABLE links; --"
HTML = '<script>alert("x")</script>'
TALLY: Counter[str] = Counter()


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str  # may hold {channel}, {code}, {widget}, {wa}
    json: Any = NOTHING
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] | None = None
    status: int | tuple[int, ...] = (400, 422)
    field: str | None = None  # the field the problem must name
    auth: bool = True
    page: bool = False  # a public HTML page answers, not problem+json
    click: bool = False  # a real visit of a real link: one click row is expected
    form: dict[str, str] | None = None  # an admin form, sent with the CSRF token of `page_of`
    page_of: str | None = None
    csrf: bool = True


def channel_cases() -> Iterator[Case]:
    post = "/api/v1/channels"

    def c(name: str, body: Any, fld: str | None, status: Any = 422) -> Case:
        return Case(name, "POST", post, json=body, field=fld, status=status)

    yield c("not an object", [1, 2], "body")
    yield c("string body", "telegram", "body")
    yield c("missing messenger", {"handle": "shop_bot"}, "messenger")
    yield c("missing handle", {"messenger": "telegram"}, "handle")
    yield c("messenger wrong type", {"messenger": 7, "handle": "shop_bot"}, "messenger")
    yield c("unsupported messenger", {"messenger": "skype", "handle": "shop"}, "messenger")
    yield c("signal is no channel", {"messenger": "signal", "handle": "+79161234567"}, "messenger")
    yield c("handle wrong type", {"messenger": "telegram", "handle": ["shop_bot"]}, "handle")
    yield c("handle too long", {"messenger": "telegram", "handle": "a" * 5000}, "handle")
    yield c("telegram handle not a bot", {"messenger": "telegram", "handle": "shop"}, "handle")
    yield c(
        "cyrillic look-alike in handle",
        {"messenger": "telegram", "handle": f"sh{CYRILLIC_A}p_bot"},
        "handle",
    )
    yield c(
        "zero-width space in handle",
        {"messenger": "telegram", "handle": f"shop{ZERO_WIDTH}_bot"},
        "handle",
    )
    yield c("sql in handle", {"messenger": "telegram", "handle": SQL}, "handle")
    yield c("html in handle", {"messenger": "vk", "handle": HTML}, "handle")
    yield c("invalid phone", {"messenger": "whatsapp", "handle": "+7 000"}, "handle")
    yield c("phone with letters", {"messenger": "whatsapp", "handle": "+7 916 ABC-11-22"}, "handle")
    yield c("phone not a number", {"messenger": "whatsapp", "handle": "call me"}, "handle")
    yield c("viber handle with spaces", {"messenger": "viber", "handle": "my bakery"}, "handle")
    yield c(
        "control character in name",
        {"messenger": "telegram", "handle": "shop_bot", "name": "Shop\x00"},
        "name",
    )
    yield c(
        "right-to-left override in name",
        {"messenger": "telegram", "handle": "shop_bot", "name": f"Shop{RTL_OVERRIDE}gnp.exe"},
        "name",
    )
    yield c(
        "name too long",
        {"messenger": "telegram", "handle": "shop_bot", "name": "n" * 101},
        "name",
    )
    yield c(
        "unknown field", {"messenger": "telegram", "handle": "shop_bot", "admin": True}, "admin"
    )
    yield c(
        "credentials not an object",
        {"messenger": "telegram", "handle": "shop_bot", "credentials": "s3cret"},
        "credentials",
    )
    yield c(
        "unknown credential",
        {"messenger": "telegram", "handle": "shop_bot", "credentials": {"token": "x" * 20}},
        "credentials.token",
    )
    yield c(
        "credential with a newline",
        {"messenger": "telegram", "handle": "shop_bot", "credentials": {"secret": "a\nb"}},
        "credentials.secret",
    )
    yield c(
        "relay url not http",
        {"messenger": "telegram", "handle": "shop_bot", "relay_url": "javascript:alert(1)"},
        "relay_url",
    )
    yield c(
        "relay url file scheme",
        {"messenger": "telegram", "handle": "shop_bot", "relay_url": "file:///etc/passwd"},
        "relay_url",
    )
    yield Case(
        "duplicate channel",
        "POST",
        post,
        json={"messenger": "telegram", "handle": "shop_bot"},
        status=409,
        field="handle",
    )
    yield Case(
        "patch: name wrong type",
        "PATCH",
        "/api/v1/channels/{channel}",
        json={"name": 5},
        field="name",
    )
    yield Case(
        "patch: messenger cannot change",
        "PATCH",
        "/api/v1/channels/{channel}",
        json={"messenger": "vk"},
        field="messenger",
    )
    yield Case(
        "patch: id not numeric", "PATCH", "/api/v1/channels/abc", json={"name": "x"}, field="id"
    )
    yield Case("get: id not numeric", "GET", "/api/v1/channels/1e9", field="id")
    yield Case("get: id too long", "GET", "/api/v1/channels/" + "9" * 40, field="id")
    # "¹".isdigit() is True but int("¹") fails: these once answered 500.
    yield Case("get: superscript digit id", "GET", "/api/v1/channels/%C2%B9", field="id")
    yield Case("get: no such channel", "GET", "/api/v1/channels/999999", status=404, field="id")


def link_body(**extra: Any) -> dict[str, Any]:
    return {"channels": ["{channel}"], **extra}


def link_cases() -> Iterator[Case]:
    post = "/api/v1/links"

    def c(name: str, body: Any, fld: str | None, status: Any = 422) -> Case:
        return Case(name, "POST", post, json=body, field=fld, status=status)

    yield c("empty object", {}, "channels")
    yield c("channels not a list", {"channels": "{channel}"}, "channels")
    yield c("channels empty", {"channels": []}, "channels")
    yield c("channel id a string", {"channels": ["1"]}, "channels.0")
    yield c("channel id a float", {"channels": [1.5]}, "channels.0")
    yield c("channel id a bool", {"channels": [True]}, "channels.0")
    yield c("channel id negative", {"channels": [-1]}, "channels.0")
    yield c("channel id huge", {"channels": [2**63]}, "channels.0")
    yield c("unknown channel", {"channels": [999999]}, "channels.0")
    yield c(
        "same channel twice", link_body() | {"channels": ["{channel}", "{channel}"]}, "channels"
    )
    yield c("too many channels", {"channels": list(range(1, 30))}, "channels")
    yield c("utm too long", link_body(source="s" * 101), "source")
    yield c("utm wrong type", link_body(medium=["cpc"]), "medium")
    yield c("utm control character", link_body(campaign="spring\x07"), "campaign")
    yield c("utm zero-width", link_body(content=f"banner{ZERO_WIDTH}a"), "content")
    yield c("utm newline", link_body(term="a\nb"), "term")
    yield c("slug with cyrillic look-alike", link_body(slug=f"promo-{CYRILLIC_A}"), "slug")
    yield c("slug with slash", link_body(slug="a/b/c"), "slug")
    yield c("slug with dot", link_body(slug="promo.svg"), "slug")
    yield c("slug too short", link_body(slug="ab"), "slug")
    yield c("slug too long", link_body(slug="a" * 33), "slug")
    yield c("slug reserved", link_body(slug="admin"), "slug")
    yield c("slug reserved, upper case", link_body(slug="API"), "slug")
    yield c("slug sql", link_body(slug=SQL), "slug")
    yield c("slug wrong type", link_body(slug=123), "slug")
    yield c("text too long", link_body(text="t" * 501), "text")
    yield c("text wrong type", link_body(text={"a": 1}), "text")
    yield c("valid_from not a date", link_body(valid_from="tomorrow"), "valid_from")
    yield c("valid_from without zone", link_body(valid_from="2026-12-01T09:00:00"), "valid_from")
    yield c(
        "valid_until before valid_from",
        link_body(valid_from="2026-12-02T00:00:00Z", valid_until="2026-12-01T00:00:00Z"),
        "valid_until",
    )
    yield c("disabled not a bool", link_body(disabled="yes"), "disabled")
    yield c("placement not an object", link_body(placement="billboard"), "placement")
    yield c("placement without name", link_body(placement={"kind": "outdoor"}), "placement.name")
    yield c(
        "placement kind unknown",
        link_body(placement={"name": "B", "kind": "blimp"}),
        "placement.kind",
    )
    yield c(
        "placement cost negative", link_body(placement={"name": "B", "cost": -5}), "placement.cost"
    )
    yield c(
        "placement cost NaN text",
        link_body(placement={"name": "B", "cost": "NaN"}),
        "placement.cost",
    )
    yield c(
        "placement cost huge", link_body(placement={"name": "B", "cost": 1e30}), "placement.cost"
    )
    yield c(
        "placement and placement_id",
        link_body(placement={"name": "B"}, placement_id=1),
        "placement_id",
    )
    yield c("placement_id unknown", link_body(placement_id=999999), "placement_id")
    yield c("unknown field", link_body(url="https://evil.example"), "url")
    yield c("a destination url is refused", link_body(target="https://evil.example"), "target")
    yield Case(
        "NaN constant in JSON",
        "POST",
        post,
        content=b'{"channels": [NaN]}',
        headers={"content-type": "application/json"},
        status=400,
        field="body",
    )
    yield Case(
        "patch: slug cannot change",
        "PATCH",
        "/api/v1/links/{code}",
        json={"slug": "new-slug"},
        field="slug",
    )
    yield Case(
        "patch: bad utm", "PATCH", "/api/v1/links/{code}", json={"source": 5}, field="source"
    )
    yield Case(
        "patch: unknown code",
        "PATCH",
        "/api/v1/links/NOSUCH1",
        json={"source": "x"},
        status=404,
        field="code",
    )
    yield Case("list: limit zero", "GET", post, params={"limit": "0"}, field="limit")
    yield Case("list: limit huge", "GET", post, params={"limit": "100000"}, field="limit")
    yield Case("list: limit text", "GET", post, params={"limit": "ten"}, field="limit")
    yield Case("list: limit negative", "GET", post, params={"limit": "-5"}, field="limit")
    yield Case("list: limit superscript", "GET", post, params={"limit": "\u00b9"}, field="limit")
    yield Case("list: cursor superscript", "GET", post, params={"before": "\u00b2"}, field="before")
    yield Case("list: cursor text", "GET", post, params={"before": "x"}, field="before")
    yield Case(
        "list: campaign too long", "GET", post, params={"campaign": "c" * 101}, field="campaign"
    )
    yield Case("get: unknown code", "GET", "/api/v1/links/ZZZZZZZ", status=404, field="code")


def batch_cases() -> Iterator[Case]:
    post = "/api/v1/links/batch"

    def c(name: str, body: Any, fld: str | None, status: Any = 422) -> Case:
        return Case(name, "POST", post, json=body, field=fld, status=status)

    good = link_body()
    yield c("not an object", [good], "body")
    yield c("links missing", {}, "links")
    yield c("links not a list", {"links": good}, "links")
    yield c("links empty", {"links": []}, "links")
    yield c("too many links", {"links": [good] * 1001}, "links")
    yield c(
        "one bad item among good ones",
        {"links": [good, good, {"channels": []}, good]},
        "links.2.channels",
    )
    yield c("an item not an object", {"links": [good, 5]}, "links.1")
    yield c(
        "unknown channel in an item",
        {"links": [good, {"channels": [999999]}]},
        "links.1.channels.0",
    )
    yield c(
        "same slug twice",
        {"links": [link_body(slug="twice"), link_body(slug="twice")]},
        "links.1.slug",
    )
    yield c(
        "look-alike slug in an item", {"links": [link_body(slug=f"{CYRILLIC_A}bc")]}, "links.0.slug"
    )
    yield c("unknown top-level field", {"links": [good], "dry_run": True}, "dry_run")
    yield Case(
        "huge batch over the body limit",
        "POST",
        post,
        content=json.dumps({"links": [{"channels": [1], "text": "t" * 500}] * 6000}).encode(),
        headers={"content-type": "application/json"},
        status=413,
        field="body",
    )


def body_cases() -> Iterator[Case]:
    """Transport-level problems, for each JSON-taking API route."""
    for path in (
        "/api/v1/channels",
        "/api/v1/links",
        "/api/v1/links/batch",
        "/api/v1/starts",
        "/api/v1/widgets",
    ):
        yield Case(
            f"{path}: truncated JSON",
            "POST",
            path,
            content=b'{"channels": [1], "source": "fly',
            headers={"content-type": "application/json"},
            status=400,
            field="body",
        )
        yield Case(
            f"{path}: wrong content type",
            "POST",
            path,
            content=b'{"channels": [1]}',
            headers={"content-type": "text/plain"},
            status=400,
            field="content-type",
        )
        yield Case(
            f"{path}: form instead of JSON",
            "POST",
            path,
            content=b"channels=1",
            headers={"content-type": "application/x-www-form-urlencoded"},
            status=400,
            field="content-type",
        )
        yield Case(
            f"{path}: not UTF-8",
            "POST",
            path,
            content=b'{"name": "\xff\xfe"}',
            headers={"content-type": "application/json"},
            status=400,
            field="body",
        )
        yield Case(
            f"{path}: nested too deep",
            "POST",
            path,
            content=b"[" * 5000 + b"]" * 5000,
            headers={"content-type": "application/json"},
            status=400,
            field="body",
        )
        yield Case(
            f"{path}: oversized body",
            "POST",
            path,
            content=b'{"a": "' + b"x" * BIG + b'"}',
            headers={"content-type": "application/json"},
            status=413,
            field="body",
        )
        yield Case(
            f"{path}: lying content-length",
            "POST",
            path,
            content=b"{}",
            headers={"content-type": "application/json", "content-length": "99999999999"},
            status=413,
            field="body",
        )
        yield Case(f"{path}: no API key", "POST", path, json={}, status=401, auth=False)
        yield Case(
            f"{path}: wrong API key",
            "POST",
            path,
            json={},
            headers={"authorization": "Bearer acq_not-a-real-key"},
            status=401,
            auth=False,
        )
        yield Case(
            f"{path}: basic auth instead of bearer",
            "POST",
            path,
            json={},
            headers={"authorization": "Basic YWRtaW46YWRtaW4="},
            status=401,
            auth=False,
        )
        yield Case(
            f"{path}: sql in the API key",
            "POST",
            path,
            json={},
            headers={"authorization": f"Bearer {SQL}"},
            status=401,
            auth=False,
        )


def redirect_cases() -> Iterator[Case]:
    for name, path in (
        ("unknown code", "/ZZZZZZZ"),
        ("code with cyrillic look-alike", f"/{CYRILLIC_A}BCDEFG"),
        ("code too long", "/" + "A" * 200),
        ("code with quote", "/abc'def"),
        ("sql in code", "/%27%20OR%201%3D1--"),
        ("html in code", "/%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
        ("percent-encoded NUL", "/ABC%00DEF"),
        ("percent-encoded newline", "/ABC%0D%0ALocation:%20https://evil.example"),
        ("double-encoded slash", "/%252F%252Fevil.example"),
        ("qr path, unknown", "/q/ZZZZZZZ"),
        ("qr path, upper, unknown", "/Q/ZZZZZZZ"),
        ("zero-width in code", "/ABC%E2%80%8BDEF"),
    ):
        yield Case(name, "GET", path, status=404, page=True)
    # A real code with an open-redirect attempt in the query: the destination never moves.
    for name, params in (
        ("next= is ignored", {"next": "https://evil.example"}),
        ("url= is ignored", {"url": "//evil.example"}),
        ("c= unknown channel", {"c": "999999"}),
    ):
        yield Case(name, "GET", "/{code}", params=params, status=302, page=True, click=True)
    yield Case(
        "POST is not a click",
        "POST",
        "/{code}",
        json={},
        status=405,
        page=True,
    )


def qr_cases() -> Iterator[Case]:
    image = "/{code}.svg"
    for name, params, fld in (
        ("size not a number", {"size_mm": "big"}, "size_mm"),
        ("size negative", {"size_mm": "-10"}, "size_mm"),
        ("size huge", {"size_mm": "100000"}, "size_mm"),
        ("size NaN", {"size_mm": "NaN"}, "size_mm"),
        ("dpi text", {"dpi": "many"}, "dpi"),
        ("dpi huge", {"dpi": "1000000"}, "dpi"),
        ("error correction unknown", {"ec": "Z"}, "ec"),
        ("colour not a colour", {"fg": "red; background:url(x)"}, "fg"),
        ("colour script", {"bg": HTML}, "bg"),
        ("quiet zone negative", {"quiet": "-1"}, "quiet"),
        ("low contrast", {"fg": "#FFFFFF", "bg": "#FEFEFE"}, None),
        ("inverted text", {"inverted": "maybe"}, "inverted"),
        ("caption too long", {"caption": "c" * 5000}, "caption"),
        ("caption control characters", {"caption": "a\x1bb"}, "caption"),
    ):
        yield Case(f"image: {name}", "GET", image, params=params, field=fld)
    yield Case(
        "image: png over the pixel limit",
        "GET",
        "/{code}.png",
        params={"size_mm": "2000", "dpi": "1200"},
        field="dpi",
    )
    yield Case("image: unknown code", "GET", "/ZZZZZZZ.svg", status=404, field="code")
    yield Case("image: unknown format", "GET", "/{code}.gif", status=404, page=True)
    post = "/api/v1/links/{code}/qr"
    yield Case("upload: bad option", "POST", post, json={"format": "svg", "ec": "X"}, field="ec")
    yield Case("upload: unknown format", "POST", post, json={"format": "bmp"}, field="format")
    yield Case("upload: unknown field", "POST", post, json={"format": "svg", "x": 1}, field="x")
    yield Case(
        "upload: logo not an image",
        "POST",
        post,
        content=(
            b'--B\r\nContent-Disposition: form-data; name="logo"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\nnot a png\r\n--B--\r\n"
        ),
        headers={"content-type": "multipart/form-data; boundary=B"},
        field="logo",
    )
    # python-multipart reads a form cut short up to the cut: a code is drawn, nothing stored.
    yield Case(
        "upload: truncated multipart",
        "POST",
        post,
        content=b'--B\r\nContent-Disposition: form-data; name="ec"\r\n\r\nH',
        headers={"content-type": "multipart/form-data; boundary=B"},
        status=(200, 400, 422),
    )
    batch = "/api/v1/qr/batch"
    yield Case("batch: neither placements nor codes", "POST", batch, json={}, field="placements")
    yield Case("batch: unknown codes", "POST", batch, json={"codes": ["ZZZZZZZ"]}, field="codes.0")
    yield Case("batch: codes not a list", "POST", batch, json={"codes": "ABC"}, field="codes")
    yield Case(
        "batch: placements without campaign",
        "POST",
        batch,
        json={"placements": [{"name": "B"}], "channels": ["{channel}"]},
        field="campaign",
    )


def widget_cases() -> Iterator[Case]:
    post = "/api/v1/widgets"
    good = {"channels": ["{channel}"], "origins": ["https://shop.example"]}

    def c(name: str, body: Any, fld: str | None, status: Any = 422) -> Case:
        return Case(f"config: {name}", "POST", post, json=body, field=fld, status=status)

    yield c("channels missing", {"origins": ["https://shop.example"]}, "channels")
    yield c("origins missing", {"channels": ["{channel}"]}, "origins")
    yield c("origin with a path", good | {"origins": ["https://shop.example/page"]}, "origins.0")
    yield c("origin javascript", good | {"origins": ["javascript:alert(1)"]}, "origins.0")
    yield c(
        "origin with cyrillic",
        good | {"origins": [f"https://sh{CYRILLIC_A}p.example"]},
        "origins.0",
    )
    yield c(
        "origin with credentials", good | {"origins": ["https://a:b@shop.example"]}, "origins.0"
    )
    yield c("colour with css injection", good | {"color": "red;}body{display:none"}, "color")
    yield c("colour wrong type", good | {"color": 0xFF0000}, "color")
    yield c("layout unknown", good | {"layout": "popup-ad"}, "layout")
    yield c("delay negative", good | {"delay": -1}, "delay")
    yield c("delay huge", good | {"delay": 10**9}, "delay")
    yield c("texts not an object", good | {"texts": "Chat"}, "texts")
    yield c("text too long", good | {"texts": {"en": {"cta": "x" * 201}}}, "texts.en.cta")
    yield c("text with control char", good | {"texts": {"en": {"cta": "Chat\x00"}}}, "texts.en.cta")
    yield c("unknown text key", good | {"texts": {"en": {"onclick": "x"}}}, "texts.en.onclick")
    yield c("unknown field", good | {"script": HTML}, "script")
    yield c("unknown channel", good | {"channels": [999999]}, "channels.0")
    yield Case(
        "config: patch unknown widget",
        "PATCH",
        "/api/v1/widgets/nosuchwidget",
        json={"name": "x"},
        status=404,
    )
    yield Case("script: unknown widget", "GET", "/w/nosuchwidget.js", status=404)
    yield Case("script: script in the id", "GET", "/w/%3Cscript%3E.js", status=404)
    beacon = "/w/{widget}/e"
    for name, content, ctype, fld, status in (
        ("beacon: not JSON", b"{not json", "text/plain", "body", 400),
        (
            "beacon: wrong content type",
            b'{"t":"impression"}',
            "application/xml",
            "content-type",
            400,
        ),
        ("beacon: unknown kind", b'{"t":"purchase"}', "text/plain", "t", 422),
        ("beacon: unknown messenger", b'{"t":"click","m":"skype"}', "text/plain", "m", 422),
        ("beacon: value not a string", b'{"t":"impression","page":5}', "text/plain", "page", 422),
        (
            "beacon: value too long",
            json.dumps({"t": "impression", "page": "p" * 5000}).encode(),
            "text/plain",
            None,
            (413, 422),
        ),
        ("beacon: oversized", b'{"t":"' + b"x" * 100_000 + b'"}', "text/plain", "body", 413),
    ):
        yield Case(
            name,
            "POST",
            beacon,
            content=content,
            headers={"content-type": ctype},
            field=fld,
            status=status,
            auth=False,
        )
    yield Case(
        "beacon: foreign origin",
        "POST",
        beacon,
        content=b'{"t":"impression","page":"https://evil.example/"}',
        headers={"content-type": "text/plain", "origin": "https://evil.example"},
        field="origin",
        status=403,
        auth=False,
    )
    yield Case(
        "beacon: unknown widget",
        "POST",
        "/w/nosuchwidget/e",
        content=b'{"t":"impression"}',
        headers={"content-type": "text/plain"},
        status=404,
        auth=False,
    )


def hook_cases() -> Iterator[Case]:
    def tg(
        name: str,
        body: bytes,
        headers: dict[str, str],
        status: Any,
        fld: str | None = None,
        path: str = "/hooks/telegram/{channel}",
    ) -> Case:
        return Case(
            name, "POST", path, content=body, headers=headers, status=status, field=fld, auth=False
        )

    start = d.encode(d.start("telegram", "0123456789AB"))
    signed = d.sign("telegram", start)
    yield tg("no secret header", start, {"content-type": "application/json"}, 401)
    yield tg("wrong secret", start, {**signed, "x-telegram-bot-api-secret-token": "guess"}, 401)
    yield tg(
        "secret of another case",
        start,
        {**signed, "x-telegram-bot-api-secret-token": d.CREDENTIALS["telegram"]["secret"].upper()},
        401,
    )
    yield tg("truncated JSON, signed", start[:40], signed, (400, 422), "body")
    yield tg("not JSON, signed", b"\x00\x01\x02", signed, (400, 422), "body")
    yield tg("JSON array, signed", b"[1,2,3]", signed, (400, 422), "body")
    yield tg("oversized body", b"{" + b" " * BIG + b"}", signed, 413, "body")
    yield tg("unknown messenger", start, signed, 404, path="/hooks/skype/{channel}")
    yield tg("channel id not numeric", start, signed, 404, path="/hooks/telegram/abc")
    yield tg("channel id sql", start, signed, 404, path="/hooks/telegram/1%20OR%201=1")
    yield tg("no such channel", start, signed, 404, path="/hooks/telegram/999999")
    yield tg("superscript channel id", start, signed, 404, path="/hooks/telegram/%C2%B9")
    yield tg("channel of another messenger", start, signed, 404, path="/hooks/viber/{channel}")
    yield tg("closed: credentials missing", start, signed, 403, path="/hooks/telegram/{open}")
    wa = d.encode(d.start("whatsapp", "0123456789AB"))
    wa_signed = d.sign("whatsapp", wa)
    yield tg(
        "whatsapp: no signature",
        wa,
        {"content-type": "application/json"},
        401,
        path="/hooks/whatsapp/{wa}",
    )
    yield tg(
        "whatsapp: body flipped after signing",
        wa.replace(b"Hello", b"Hallo"),
        wa_signed,
        401,
        path="/hooks/whatsapp/{wa}",
    )
    yield tg(
        "whatsapp: signature of another secret",
        wa,
        d.sign("whatsapp", wa, {"app_secret": "not-the-secret"}),
        401,
        path="/hooks/whatsapp/{wa}",
    )
    yield tg(
        "whatsapp: malformed signature",
        wa,
        {**wa_signed, "x-hub-signature-256": "sha256=zz"},
        401,
        path="/hooks/whatsapp/{wa}",
    )
    yield Case(
        "whatsapp: handshake with a wrong token",
        "GET",
        "/hooks/whatsapp/{wa}",
        params={"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "123"},
        status=403,
        auth=False,
    )


def report_cases() -> Iterator[Case]:
    post = "/api/v1/starts"
    good = {"messenger": "telegram", "channel": "{channel}", "user_id": 42, "event_id": "e1"}

    def c(name: str, body: Any, fld: str | None, path: str = post) -> Case:
        return Case(name, "POST", path, json=body, field=fld, status=422)

    yield c("missing messenger", {k: v for k, v in good.items() if k != "messenger"}, "messenger")
    yield c("unsupported messenger", good | {"messenger": "icq"}, "messenger")
    yield c("channel of another messenger", good | {"messenger": "vk"}, "messenger")
    yield c("channel unknown", good | {"channel": 999999}, "channel")
    yield c("channel a string", good | {"channel": "1"}, "channel")
    yield c("user id missing", {k: v for k, v in good.items() if k != "user_id"}, "user_id")
    yield c("user id a list", good | {"user_id": [1]}, "user_id")
    yield c("user id negative", good | {"user_id": -1}, "user_id")
    yield c("user id too long", good | {"user_id": "u" * 200}, "user_id")
    yield c("event id missing", {k: v for k, v in good.items() if k != "event_id"}, "event_id")
    yield c("event id with control chars", good | {"event_id": "e\x001"}, "event_id")
    yield c("ref with bad characters", good | {"ref": "ref with spaces"}, "ref")
    yield c("ref too long", good | {"ref": "R" * 65}, "ref")
    yield c("ref sql", good | {"ref": SQL}, "ref")
    yield c("time not a date", good | {"time": "yesterday"}, "time")
    yield c("subscribed not a bool", good | {"subscribed": "yes"}, "subscribed")
    yield c("user name html too long", good | {"user_name": HTML * 30}, "user_name")
    yield c("unknown field", good | {"phone": "+79161234567"}, "phone")
    yield c("opt-out with a ref", good | {"ref": "0123456789AB"}, "ref", "/api/v1/optouts")


def stats_cases() -> Iterator[Case]:
    for name, path, params, fld in (
        ("group_by unknown", "/api/v1/stats", {"group_by": "password"}, "group_by"),
        ("group_by sql", "/api/v1/stats", {"group_by": SQL}, "group_by"),
        ("from not a date", "/api/v1/stats", {"from": "monday"}, "from"),
        ("to without zone", "/api/v1/stats", {"to": "2026-01-01T00:00:00"}, "to"),
        ("campaign too long", "/api/v1/stats", {"campaign": "c" * 101}, "campaign"),
        ("attribution unknown", "/api/v1/stats", {"attribution": "middle"}, "attribution"),
        ("subscribers: limit text", "/api/v1/subscribers", {"limit": "all"}, "limit"),
        ("subscribers: status unknown", "/api/v1/subscribers", {"status": "maybe"}, "status"),
        ("subscribers: channel text", "/api/v1/subscribers", {"channel": "x"}, "channel"),
        ("export: channel not an id", "/api/v1/consent.csv", {"channel": "1;DROP"}, "channel"),
        (
            "widget stats: group_by unknown",
            "/api/v1/widgets/{widget}/stats",
            {"group_by": "ip"},
            "group_by",
        ),
    ):
        yield Case(f"{name}", "GET", path, params=params, field=fld)
    yield Case("subscriber id not numeric", "GET", "/api/v1/subscribers/abc", field="id")
    yield Case("subscriber id superscript", "GET", "/api/v1/subscribers/%C2%B9/consent", field="id")
    yield Case(
        "export: channel superscript",
        "GET",
        "/api/v1/consent.csv",
        params={"channel": "\u00b3"},
        field="channel",
    )
    yield Case(
        "subscribers: channel superscript",
        "GET",
        "/api/v1/subscribers",
        params={"channel": "\u00b9"},
        field="channel",
    )
    yield Case("erase: id not numeric", "DELETE", "/api/v1/subscribers/1.5", field="id")
    yield Case("erase: no such subscriber", "DELETE", "/api/v1/subscribers/999999", status=404)
    yield Case("export without an API key", "GET", "/api/v1/consent.csv", status=401, auth=False)
    yield Case("stats without an API key", "GET", "/api/v1/stats", status=401, auth=False)


def admin_cases() -> Iterator[Case]:
    """The admin UI's forms: refused with the field marked on the page (id="<field>-error")."""

    def c(
        name: str,
        path: str,
        form: dict[str, str],
        fld: str | None,
        status: Any = 422,
        page_of: str | None = None,
        csrf: bool = True,
    ) -> Case:
        return Case(
            f"{path}: {name}",
            "POST",
            path,
            form=form,
            field=fld,
            status=status,
            page=True,
            page_of=page_of or path,
            csrf=csrf,
            auth=False,
        )

    new_channel = "/admin/channels/new"
    tg = f"{new_channel}?messenger=telegram"
    yield c(
        "handle not a bot",
        new_channel,
        {"messenger": "telegram", "handle": "shop"},
        "handle",
        page_of=tg,
    )
    yield c(
        "cyrillic handle",
        new_channel,
        {"messenger": "telegram", "handle": f"sh{CYRILLIC_A}p_bot"},
        "handle",
        page_of=tg,
    )
    yield c(
        "sql handle", new_channel, {"messenger": "telegram", "handle": SQL}, "handle", page_of=tg
    )
    yield c(
        "phone invalid",
        new_channel,
        {"messenger": "whatsapp", "handle": "+7 000"},
        "handle",
        page_of=f"{new_channel}?messenger=whatsapp",
    )
    yield c(
        "relay url javascript",
        new_channel,
        {"messenger": "telegram", "handle": "x_bot", "relay_url": "javascript:alert(1)"},
        "relay_url",
        page_of=tg,
    )
    yield c(
        "name with control char",
        new_channel,
        {"messenger": "telegram", "handle": "x_bot", "name": "a\x00b"},
        "name",
        page_of=tg,
    )
    yield c(
        "unsupported messenger",
        new_channel,
        {"messenger": "skype", "handle": "x"},
        None,
        (400, 404, 422),
        page_of=tg,
    )
    yield c(
        "no CSRF token",
        new_channel,
        {"messenger": "telegram", "handle": "x_bot"},
        None,
        403,
        page_of=tg,
        csrf=False,
    )
    new_link = "/admin/links/new"
    yield c("no channel", new_link, {"campaign": "spring"}, "channels")
    yield c(
        "campaign too long", new_link, {"channels": "{channel}", "campaign": "x" * 101}, "campaign"
    )
    yield c("slug reserved", new_link, {"channels": "{channel}", "slug": "admin"}, "slug")
    yield c(
        "slug look-alike", new_link, {"channels": "{channel}", "slug": f"{CYRILLIC_A}bc"}, "slug"
    )
    yield c(
        "cost not a number",
        new_link,
        {"channels": "{channel}", "placement.name": "B", "placement.cost": "a lot"},
        "placement-cost",
    )
    yield c("unknown channel", new_link, {"channels": "999999"}, "channels")
    yield c("bulk: no channel", "/admin/links/bulk", {"rows": "A;web\n"}, "channels")
    new_widget = "/admin/widgets/new"
    yield c(
        "origin with a path",
        new_widget,
        {"channels": "{channel}", "origins": "https://shop.example/page"},
        "origins",
    )
    yield c(
        "colour injection",
        new_widget,
        {
            "channels": "{channel}",
            "origins": "https://shop.example",
            "color": "red;}body{display:none",
        },
        "color",
    )
    yield c("no origins", new_widget, {"channels": "{channel}"}, "origins")
    yield Case(
        "login: no CSRF",
        "POST",
        "/admin/login",
        form={"email": "a@b.c", "password": "x"},
        status=403,
        page=True,
        page_of="/admin/login",
        csrf=False,
        auth=False,
    )
    yield Case(
        "login: sql in email",
        "POST",
        "/admin/login",
        form={"email": SQL, "password": SQL},
        status=401,
        page=True,
        page_of="/admin/channels",
        auth=False,
    )
    yield Case(
        "erase without confirming",
        "POST",
        "/admin/subscribers/999999/erase",
        form={},
        status=(404, 422),
        page=True,
        page_of="/admin/subscribers",
        auth=False,
    )


KINDS = {
    "channels": channel_cases,
    "links": link_cases,
    "batch": batch_cases,
    "bodies": body_cases,
    "redirect": redirect_cases,
    "qr": qr_cases,
    "widget": widget_cases,
    "webhooks": hook_cases,
    "reports": report_cases,
    "stats": stats_cases,
    "admin": admin_cases,
}


@dataclass
class World:
    channel: int
    open: int  # a channel whose webhook is still closed (no credentials)
    wa: int
    code: str
    widget: str


ADMIN = ("ops@example.com", "correct horse battery")


def make_world(client: TestClient, db: Database) -> World:
    with db.writer.begin() as s:
        accounts.create(s, *ADMIN)
    page = client.get("/admin/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    signed = client.post(
        "/admin/login", data={"email": ADMIN[0], "password": ADMIN[1], "csrf": csrf.group(1)}
    )
    assert signed.status_code == 303, signed.text
    channel = make_channel(db, "telegram", "shop_bot", credentials=d.CREDENTIALS["telegram"])
    closed = make_channel(db, "telegram", "other_bot")
    with db.writer.begin() as s:  # a channel registered before its webhook secret was set
        from acquisition.models import Channel

        row = s.get(Channel, closed.id)
        assert row is not None
        row.credentials = {}
    wa = make_channel(db, "whatsapp", d.HANDLES["whatsapp"], credentials=d.CREDENTIALS["whatsapp"])
    link = make_link(db, [channel.id], source="flyer")
    r = client.post(
        "/api/v1/widgets",
        json={"channels": [channel.id], "origins": ["https://shop.example"]},
    )
    assert r.status_code == 201, r.text
    return World(channel.id, closed.id, wa.id, link.code, r.json()["id"])


def fill(value: Any, world: World) -> Any:
    names = {
        "{channel}": world.channel,
        "{open}": world.open,
        "{wa}": world.wa,
        "{code}": world.code,
        "{widget}": world.widget,
    }
    if isinstance(value, str):
        if value in ("{channel}",):
            return world.channel
        for key, replacement in names.items():
            value = value.replace(key, str(replacement))
        return value
    if isinstance(value, list):
        return [fill(v, world) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, world) for k, v in value.items()}
    return value


# Written by background loops on their own schedule (the rollups' to-do list), not by requests.
BACKGROUND = {"rollup_days", "daily_stats"}


def counts(db: Database) -> dict[str, int]:
    with db.reader() as s:
        return {
            t.name: int(s.scalar(select(func.count()).select_from(t)) or 0)
            for t in Base.metadata.sorted_tables
            if t.name not in BACKGROUND
        }


def check(client: TestClient, db: Database, world: World, key: str, case: Case) -> str | None:
    """Run one case; return what was wrong with the answer, or None."""
    headers = dict(case.headers)
    if not case.auth:
        client.headers.pop("authorization", None)
    kwargs: dict[str, Any] = {"headers": headers, "params": case.params}
    if case.form is not None:
        form = {k: str(fill(v, world)) for k, v in case.form.items()}
        if case.csrf:
            page = client.get(case.page_of or case.path)
            found = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert found, f"no CSRF token on {case.page_of}"
            form["csrf"] = found.group(1)
        kwargs["data"] = form
    elif case.json is not NOTHING:
        kwargs["json"] = fill(case.json, world)
    elif case.content is not None:
        kwargs["content"] = case.content
    before = counts(db)
    try:
        r = client.request(case.method, fill(case.path, world), **kwargs)
    finally:
        client.headers["authorization"] = key
    drained(client)
    after = counts(db)
    expected = case.status if isinstance(case.status, tuple) else (case.status,)
    problems = []
    if r.status_code >= 500 or r.status_code not in expected:
        problems.append(f"status {r.status_code} (expected {expected}): {r.text[:300]}")
    changed = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
    if case.click and changed == {"clicks": (before["clicks"], before["clicks"] + 1)}:
        changed = {}
    if changed:
        problems.append(f"rows changed: {changed}")
    if 400 <= r.status_code < 500 and not case.page:
        if r.headers.get("content-type", "").split(";")[0] != "application/problem+json":
            problems.append(f"content-type {r.headers.get('content-type')}")
        elif case.field is not None:
            body = r.json()
            named = {e.get("field") for e in body.get("errors", [])}
            if case.field not in named:
                problems.append(f"field {case.field!r} not named: {body}")
    if r.status_code == 302:
        location = r.headers["location"]
        if not location.startswith("https://t.me/shop_bot?start="):
            problems.append(f"redirected to {location}")
    if (
        case.form is not None
        and case.field is not None
        and f'id="{case.field}-error"' not in r.text
    ):
        problems.append(f"field {case.field!r} not marked on the page")
    if case.page and r.status_code in (200, 404):
        page = r.text
        if "<script>alert" in page or "evil.example" in page.replace("evil.example%", ""):
            problems.append("the page echoes the attacker's input unescaped")
    return "; ".join(problems) or None


@pytest.mark.parametrize("kind", list(KINDS))
def test_bad_input_gets_a_named_4xx_and_changes_nothing(
    api: TestClient, db: Database, kind: str
) -> None:
    world = make_world(api, db)
    key = api.headers["authorization"]
    cases = list(KINDS[kind]())
    failures = []
    for case in cases:
        wrong = check(api, db, world, key, case)
        if wrong:
            failures.append(f"{case.name}: {wrong}")
    TALLY[kind] = len(cases)
    print(f"\nbad input, {kind}: {len(cases)} cases, {len(failures)} failed")
    assert not failures, "\n".join(failures)


def test_stored_html_and_sql_come_back_as_text(api: TestClient, db: Database) -> None:
    """Injection attempts that are valid text are stored as text and escaped wherever shown."""
    r = api.post(
        "/api/v1/channels",
        json={"messenger": "telegram", "handle": "shop_bot", "name": HTML},
    )
    assert r.status_code == 201
    channel = r.json()["id"]
    r = api.post(
        "/api/v1/links",
        json={"channels": [channel], "campaign": SQL, "text": HTML, "placement": {"name": HTML}},
    )
    assert r.status_code == 201, r.text
    code = r.json()["code"]
    assert r.json()["campaign"] == SQL and r.json()["text"] == HTML
    got = api.get(f"/api/v1/links/{code}").json()
    assert got["campaign"] == SQL and got["placement"]["name"] == HTML
    assert counts(db)["links"] == 1
    # The bot page shows the channel's name: escaped.
    page = api.get(f"/{code}", headers={"user-agent": "TelegramBot (like TwitterBot)"})
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    svg = api.get(f"/{code}.svg", params={"caption": HTML})
    assert svg.status_code == 200 and b"<script>" not in svg.content
