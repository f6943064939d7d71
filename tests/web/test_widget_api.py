"""/api/v1/widgets, the served script (/w/{id}.js) and the desktop QR images (/w/{id}/qr/...)."""

from __future__ import annotations

import gzip
import io
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import zxingcpp
from PIL import Image
from starlette.testclient import TestClient

from acquisition.db import Database
from acquisition.models import Link, Placement, Widget, WidgetLink
from acquisition.web.widget import QR_MAX_URL, template
from tests.conftest import BASE_URL, count
from tests.factories import make_channel

SITE = "https://shop.example"
BUDGET = 6 * 1024


@pytest.fixture
def channel_ids(db: Database) -> list[int]:
    return [make_channel(db).id, make_channel(db, "viber", "shop").id]


def create(api: TestClient, channel_ids: list[int], **extra: Any) -> dict[str, Any]:
    r = api.post("/api/v1/widgets", json={"channels": channel_ids, "origins": [SITE], **extra})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def served_config(body: bytes) -> dict[str, Any]:
    """The config JSON as the script carries it, cut out between the template's two halves."""
    t = template()
    text = body.decode("utf-8")
    assert text.startswith(t.head) and text.endswith(t.tail)
    return json.loads(text[len(t.head) : len(text) - len(t.tail)])  # type: ignore[no-any-return]


# --- the API ------------------------------------------------------------------------------------


def test_creating_a_widget_returns_its_snippet(
    api: TestClient, channel_ids: list[int], db: Database
) -> None:
    r = api.post("/api/v1/widgets", json={"channels": channel_ids, "origins": [SITE]})
    assert r.status_code == 201, r.text
    body = r.json()
    wid = body["id"]
    assert wid.startswith("wgt_")
    assert body["script_url"] == f"{BASE_URL}/w/{wid}.js"
    assert body["snippet"] == f'<script async src="{BASE_URL}/w/{wid}.js"></script>'
    assert r.headers["location"] == f"/api/v1/widgets/{wid}"
    assert body["origins"] == [SITE] and body["channels"] == channel_ids
    assert [ln["messenger"] for ln in body["links"]] == ["telegram", "viber"]
    assert body["csp"]["script-src"] == BASE_URL
    assert body["csp"]["legacy_style_hash"].startswith("'sha256-")
    assert count(db, Widget) == 1 and count(db, WidgetLink) == 2
    assert count(db, Link) == 2 and count(db, Placement) == 1
    # Each button is a real tracked link, reachable through the links API too.
    link = api.get(f"/api/v1/links/{body['links'][0]['code']}").json()
    assert link["channels"] == [channel_ids[0]] and link["placement"]["kind"] == "widget"


def test_widgets_are_listed_read_and_edited(api: TestClient, channel_ids: list[int]) -> None:
    created = create(api, channel_ids)
    wid = created["id"]
    assert [w["id"] for w in api.get("/api/v1/widgets").json()["widgets"]] == [wid]
    assert api.get(f"/api/v1/widgets/{wid}").json() == created
    r = api.patch(
        f"/api/v1/widgets/{wid}",
        json={"color": "#112233", "channels": channel_ids[::-1], "texts": {"en": {"cta": "Hi"}}},
    )
    assert r.status_code == 200, r.text
    edited = r.json()
    assert edited["version"] == created["version"] + 1
    assert (edited["color"], edited["texts"]) == ("#112233", {"en": {"cta": "Hi"}})
    assert edited["origins"] == created["origins"]  # untouched
    assert [ln["code"] for ln in edited["links"]] == [ln["code"] for ln in created["links"]][::-1]
    config = served_config(api.get(f"/w/{wid}.js").content)
    assert config["color"] == "#112233" and config["texts"] == {"en": {"cta": "Hi"}}


BAD: list[tuple[dict[str, Any], str]] = [
    ({"channels": [424242]}, "channels.0"),
    ({"origins": ["https://shop.example/path"]}, "origins.0"),
    ({"origins": []}, "origins"),
    ({"color": "red"}, "color"),
    ({"delay": 601}, "delay"),
    ({"scroll": -1}, "scroll"),
    ({"include": ["no-slash"]}, "include.0"),
    ({"texts": {"en": {"cta": "x" * 201}}}, "texts.en.cta"),
    ({"consent": {"version": ""}}, "consent.version"),
    ({"layout": "grid"}, "layout"),
    ({"whatsapp_qr": 1}, "whatsapp_qr"),
    ({"script": "alert(1)"}, "script"),
]


@pytest.mark.parametrize(("change", "field"), BAD)
def test_bad_fields_are_named_and_nothing_is_half_stored(
    api: TestClient, channel_ids: list[int], db: Database, change: dict[str, Any], field: str
) -> None:
    r = api.post("/api/v1/widgets", json={"channels": channel_ids, "origins": [SITE], **change})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in r.json()["errors"]]
    assert count(db, Widget) == 0 and count(db, WidgetLink) == 0
    assert count(db, Link) == 0 and count(db, Placement) == 0


@pytest.mark.parametrize(("change", "field"), BAD)
def test_a_bad_edit_changes_nothing(
    api: TestClient, channel_ids: list[int], db: Database, change: dict[str, Any], field: str
) -> None:
    created = create(api, channel_ids[:1])
    r = api.patch(f"/api/v1/widgets/{created['id']}", json=change)
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]]
    assert api.get(f"/api/v1/widgets/{created['id']}").json() == created
    assert count(db, Link) == 1


def test_the_widget_api_needs_a_key_and_names_unknown_widgets(
    client: TestClient, api_key: str, db: Database
) -> None:
    assert client.get("/api/v1/widgets").status_code == 401
    r = client.post("/api/v1/widgets", json={"channels": [1], "origins": [SITE]})
    assert r.status_code == 401
    client.headers["authorization"] = f"Bearer {api_key}"
    for method in ("get", "patch"):
        kwargs = {"json": {}} if method == "patch" else {}
        r = getattr(client, method)("/api/v1/widgets/wgt_0000000000", **kwargs)
        assert r.status_code == 404 and r.json()["errors"][0]["field"] == "id"
    r = client.post("/api/v1/widgets", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400


def test_the_openapi_document_describes_the_widget_api(api: TestClient) -> None:
    paths = api.get("/api/v1/openapi.json").json()["paths"]
    assert {"post", "get"} <= set(paths["/widgets"])
    assert {"get", "patch"} <= set(paths["/widgets/{id}"])
    assert "get" in paths["/widgets/{id}/stats"]


# --- the script ---------------------------------------------------------------------------------


def test_the_script_is_served_with_its_config(api: TestClient, channel_ids: list[int]) -> None:
    created = create(api, channel_ids, consent={"version": "v2"}, include=["/pricing*"])
    r = api.get(f"/w/{created['id']}.js", headers={"accept-encoding": "identity"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/javascript; charset=utf-8"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "public, max-age=300, stale-while-revalidate=86400"
    assert r.headers["cross-origin-resource-policy"] == "cross-origin"
    assert "content-encoding" not in r.headers and "set-cookie" not in r.headers
    assert "x-frame-options" not in r.headers
    config = served_config(r.content)
    assert config["id"] == created["id"] and config["consent_version"] == "v2"
    assert config["include"] == ["/pricing*"]
    assert [b["href"] for b in config["buttons"]] == [ln["href"] for ln in created["links"]]
    assert config["buttons"][0]["qr"] is None
    assert config["buttons"][1]["qr"] == created["links"][1]["qr"]
    assert "__ACQUISITION_" not in r.text and "/*" not in r.text  # substituted and minified


def test_hostile_texts_cannot_break_out_of_the_script(
    api: TestClient, channel_ids: list[int]
) -> None:
    hostile = "</script><script>alert(1)</script><!-- & \u2028\u2029 '\" `${x}`"
    created = create(
        api,
        channel_ids,
        name=hostile[:100],
        texts={"en": {"cta": hostile, "title": "a\u2028b"}},
        consent={"version": "v1", "text": {"en": hostile}},
    )
    body = api.get(f"/w/{created['id']}.js").content
    text = body.decode("utf-8")
    assert "</script" not in text.lower() and "<!--" not in text and "<script" not in text
    assert "\u2028" not in text and "\u2029" not in text
    config = served_config(body)  # and the JSON still says exactly what was stored
    assert config["texts"]["en"] == {"cta": hostile, "title": "a\u2028b", "consent": hostile}


def test_unknown_widgets_get_a_404(client: TestClient, db: Database) -> None:
    for path in ("/w/wgt_0000000000.js", "/w/nope.js", "/w/wgt_0000000000/qr/ABCDEFG.svg"):
        assert client.get(path).status_code == 404, path
    r = client.post("/w/wgt_0000000000/e", content=b"{}", headers={"content-type": "text/plain"})
    assert r.status_code == 404


def test_the_script_revalidates_with_its_etag(api: TestClient, channel_ids: list[int]) -> None:
    wid = create(api, channel_ids)["id"]
    first = api.get(f"/w/{wid}.js")
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    again = api.get(f"/w/{wid}.js", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag and again.headers["cache-control"].startswith("public")
    assert api.get(f"/w/{wid}.js", headers={"if-none-match": f'"x", {etag}'}).status_code == 304
    assert api.get(f"/w/{wid}.js", headers={"if-none-match": '"other"'}).status_code == 200
    # An edit changes the script, so the old copy is stale at the next revalidation.
    api.patch(f"/api/v1/widgets/{wid}", json={"position": "left"})
    changed = api.get(f"/w/{wid}.js", headers={"if-none-match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert served_config(changed.content)["position"] == "left"


def test_a_versioned_script_url_may_be_cached_forever(
    api: TestClient, channel_ids: list[int]
) -> None:
    created = create(api, channel_ids)
    r = api.get(created["versioned_script_url"].removeprefix(BASE_URL))
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    stale = api.get(f"/w/{created['id']}.js?v=old")
    assert stale.headers["cache-control"].startswith("public, max-age=300")


def test_the_script_is_gzipped_when_the_browser_accepts_it(
    api: TestClient, channel_ids: list[int]
) -> None:
    wid = create(api, channel_ids)["id"]
    plain = api.get(f"/w/{wid}.js", headers={"accept-encoding": "identity"})
    # httpx would decode it for us: read the raw bytes off the wire instead.
    with api.stream("GET", f"/w/{wid}.js", headers={"accept-encoding": "br, gzip"}) as r:
        raw = b"".join(r.iter_raw())
        assert r.headers["content-encoding"] == "gzip"
        assert r.headers["vary"] == "Accept-Encoding"
        assert int(r.headers["content-length"]) == len(raw)
    assert gzip.decompress(raw) == plain.content
    refused = api.get(f"/w/{wid}.js", headers={"accept-encoding": "gzip;q=0, deflate"})
    assert "content-encoding" not in refused.headers
    assert plain.headers["etag"] == refused.headers["etag"]


def test_script_and_styles_fit_the_size_budget(
    api: TestClient, channel_ids: list[int], db: Database
) -> None:
    """Everything loaded before the first interaction: the minified script with its CSS. Fails
    past 6 KB gzip -9 (Joinchat ships 6.8 KB of JS plus 5.7 KB of CSS)."""
    t = template()
    bare = gzip.compress((t.head + "{}" + t.tail).encode("utf-8"), compresslevel=9)
    four = [
        *channel_ids,
        make_channel(db, "whatsapp", "+7 916 123-45-67").id,
        make_channel(db, "instagram", "shop").id,
    ]
    consent = {"version": "v2", "text": {"en": "I agree to receive news"}}
    wid = create(api, four, consent=consent)["id"]
    served = api.get(f"/w/{wid}.js", headers={"accept-encoding": "identity"}).content
    typical = gzip.compress(served, compresslevel=9)
    print(
        f"\nwidget script + CSS, gzip -9: {len(bare)} B without config, {len(typical)} B as "
        f"served with 4 buttons and consent ({len(served)} B raw); budget {BUDGET} B"
    )
    assert len(bare) <= BUDGET, f"script + CSS is {len(bare)} B gzip, over the {BUDGET} B budget"
    assert len(typical) <= BUDGET, f"served script is {len(typical)} B gzip, over {BUDGET} B"


# --- the desktop QR hand-off --------------------------------------------------------------------


def decode_svg(svg: bytes) -> list[str]:
    cairosvg = pytest.importorskip("cairosvg")
    png = cairosvg.svg2png(bytestring=svg, output_width=800, background_color="white")
    image = Image.open(io.BytesIO(png)).convert("RGB")
    found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    return [barcode.text for barcode in found]


def test_the_qr_carries_the_page_attribution_to_the_phone(
    api: TestClient, channel_ids: list[int]
) -> None:
    created = create(api, channel_ids, consent={"version": "v2"})
    viber = created["links"][1]
    query = {
        "utm_source": "newsletter",
        "utm_campaign": "spring",
        "gclid": "G" * 400,
        "page": f"{SITE}/pricing",
        "w": "wgt_forged0000",
        "cv": "v2",
        "evil": "https://attacker.example",
    }
    r = api.get(viber["qr"].removeprefix(BASE_URL), params=query)
    assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
    assert r.headers["cache-control"] == "private, max-age=3600"
    [text] = decode_svg(r.content)
    url = urlsplit(text)
    assert f"{url.scheme}://{url.netloc}{url.path}" == viber["href"]
    got = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert got == {
        "w": created["id"],  # from the path, never from the query
        "cv": "v2",
        "utm_source": "newsletter",
        "utm_campaign": "spring",
        "gclid": "G" * 300,
        "page": f"{SITE}/pricing",
    }


def test_the_qr_url_stays_short_enough_to_scan(api: TestClient, channel_ids: list[int]) -> None:
    created = create(api, channel_ids)
    viber = created["links"][1]
    query = {"utm_source": "a" * 300, "utm_medium": "b" * 300, "page": "https://x/" + "c" * 290}
    r = api.get(viber["qr"].removeprefix(BASE_URL), params=query)
    [text] = decode_svg(r.content)
    assert len(text) <= QR_MAX_URL
    got = parse_qs(urlsplit(text).query)
    assert got["utm_source"] == ["a" * 300] and "page" not in got


def test_qr_images_exist_only_for_the_widgets_own_codes(
    api: TestClient, channel_ids: list[int], db: Database
) -> None:
    first = create(api, channel_ids)
    other = create(api, channel_ids)
    code = first["links"][1]["code"]
    assert api.get(f"/w/{first['id']}/qr/{code}.svg").status_code == 200
    assert api.get(f"/w/{first['id']}/qr/{code.lower()}.svg").status_code == 200
    assert api.get(f"/w/{other['id']}/qr/{code}.svg").status_code == 404
    plain = api.post("/api/v1/links", json={"channels": [channel_ids[1]]}).json()["code"]
    assert api.get(f"/w/{first['id']}/qr/{plain}.svg").status_code == 404
    # A channel taken off the widget takes its QR with it.
    api.patch(f"/api/v1/widgets/{first['id']}", json={"channels": channel_ids[:1]})
    assert api.get(f"/w/{first['id']}/qr/{code}.svg").status_code == 404
