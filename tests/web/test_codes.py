"""GET /{code}.svg|png|pdf and POST /api/v1/links/{code}/qr: every file is decoded back with a real
QR reader (after cairo or PDFium drew it) and must give exactly the link's QR URL, which the
redirect then counts as a scan of the link's placement."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image
from sqlalchemy import select
from starlette.testclient import TestClient

from acquisition import links, qr
from acquisition.db import Database
from acquisition.models import ApiKey, Click, Link, utcnow
from tests.conftest import BASE_URL, count, drained
from tests.factories import make_channel, make_link
from tests.test_qr import (
    BAD_PARAMETERS,
    COLOUR_PAIRS,
    DAMAGE,
    SVG_NS,
    decode,
    make_logo,
    pdf_page_size_pt,
    rasterise,
)
from tests.web.test_redirect import PHONE

FORMATS = ["svg", "png", "pdf"]


@pytest.fixture
def code(db: Database) -> str:
    channel = make_channel(db, "telegram", "shop_bot")
    return make_link(
        db,
        [channel.id],
        campaign="spring",
        source="billboard",
        medium="outdoor",
        placement={"name": "Billboard 12, Tverskaya", "kind": "outdoor", "cost": 1500},
    ).code


def qr_url(code: str) -> str:
    return links.qr_url(BASE_URL, code)


def get(client: TestClient, path: str, **params: Any) -> Any:
    return client.get(path, params=params)


# --------------------------------------------------------------------------- every format decodes


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("fg", "bg"), COLOUR_PAIRS)
@pytest.mark.parametrize(("size_mm", "dpi"), [(20, 600), (50, 300), (300, 72)])
def test_every_format_decodes_to_the_links_qr_url(
    client: TestClient, code: str, fmt: str, fg: str, bg: str, size_mm: int, dpi: int
) -> None:
    r = get(client, f"/{code}.{fmt}", size_mm=size_mm, dpi=dpi, fg=fg, bg=bg)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == qr.MEDIA_TYPES[fmt]
    assert decode(rasterise(fmt, r.content)) == [qr_url(code)]


def test_the_payload_is_the_upper_case_short_url_on_the_q_path(api: TestClient, code: str) -> None:
    assert qr_url(code) == f"HTTPS://GO.EXAMPLE.COM/Q/{code}"
    body = api.get(f"/api/v1/links/{code}").json()
    assert body["qr"]["payload"] == qr_url(code)
    assert body["qr"]["png"] == f"{BASE_URL}/{code}.png"
    assert qr.encode(qr_url(code)).modes == ("alphanumeric",)


def test_a_scan_is_a_click_of_the_links_placement_marked_qr(
    client: TestClient, db: Database, code: str
) -> None:
    [text] = decode(rasterise("png", get(client, f"/{code}.png").content))
    scanned = urlsplit(text)
    assert scanned.netloc.lower() == urlsplit(BASE_URL).netloc
    r = client.get(scanned.path, headers={"user-agent": PHONE})
    assert r.status_code == 302
    assert r.headers["location"].startswith("https://t.me/shop_bot?start=")
    drained(client)
    with db.reader() as s:
        click = s.scalars(select(Click)).one()
        link = s.get(Link, click.link_id)
        assert link is not None and link.code == code
        assert link.placement is not None and link.placement.name == "Billboard 12, Tverskaya"
    assert (click.via, click.visitor) == ("qr", "human")
    assert (click.campaign, click.source) == ("spring", "billboard")


def test_fetching_the_image_is_not_a_click(client: TestClient, db: Database, code: str) -> None:
    for fmt in FORMATS:
        assert get(client, f"/{code}.{fmt}").status_code == 200
    drained(client)
    assert count(db, Click) == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_caption_and_a_custom_quiet_zone_still_decode(
    client: TestClient, code: str, fmt: str
) -> None:
    r = get(client, f"/{code}.{fmt}", caption="Scan to subscribe in Telegram", quiet=6)
    assert r.status_code == 200
    assert decode(rasterise(fmt, r.content)) == [qr_url(code)]


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_a_flyer_png_from_http_decodes_after_print_and_photo_damage(
    client: TestClient, code: str, damage: str
) -> None:
    r = get(client, f"/{code}.png", size_mm=50, dpi=300, fg="#000080")
    image = Image.open(io.BytesIO(r.content)).convert("RGB")
    assert decode(DAMAGE[damage](image)) == [qr_url(code)]


# --------------------------------------------------------------------------- physical size


@pytest.mark.parametrize(
    ("size_mm", "dpi"), [(50, 300), (20, 600), (33.3, 301), (1500, 72), (85, 1200)]
)
def test_the_png_has_the_pixel_size_and_dpi_asked_for(
    client: TestClient, code: str, size_mm: float, dpi: int
) -> None:
    r = get(client, f"/{code}.png", size_mm=size_mm, dpi=dpi)
    assert r.status_code == 200
    image = Image.open(io.BytesIO(r.content))
    side = round(size_mm / 25.4 * dpi)
    assert image.size == (side, side)
    assert image.info["dpi"] == pytest.approx((dpi, dpi), abs=0.01)


@pytest.mark.parametrize("size_mm", [20, 50, 1500])
def test_the_svg_states_its_size_in_millimetres(
    client: TestClient, code: str, size_mm: int
) -> None:
    root = ET.fromstring(get(client, f"/{code}.svg", size_mm=size_mm).content)
    assert root.tag == f"{SVG_NS}svg"
    assert root.get("width") == f"{size_mm}mm" and root.get("height") == f"{size_mm}mm"


@pytest.mark.parametrize("size_mm", [20, 50, 1500, 5000])
def test_the_pdf_page_is_the_size_asked_for_in_points(
    client: TestClient, code: str, size_mm: int
) -> None:
    r = get(client, f"/{code}.pdf", size_mm=size_mm)
    width, height = pdf_page_size_pt(r.content)
    assert width == pytest.approx(size_mm / 25.4 * 72, abs=0.01)
    assert height == pytest.approx(width, abs=0.01)


def test_defaults_suit_a_flyer(client: TestClient, code: str) -> None:
    png = Image.open(io.BytesIO(get(client, f"/{code}.png").content))
    assert png.size == (591, 591) and png.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    r = get(client, f"/{code}.svg")
    assert r.headers["content-disposition"] == f'inline; filename="{code}-50mm.svg"'


# --------------------------------------------------------------------------- bad parameters


# A query string cannot carry the million-character caption: 5000 characters stand in for it.
QUERY_CASES = [
    (name, {k: v[:5000] for k, v in params.items()}, logo, field)
    for name, params, logo, field in BAD_PARAMETERS
    if logo is None
]
LOGO_CASES = [case for case in BAD_PARAMETERS if case[2] is not None]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("params", "field"),
    [(case[1], case[3]) for case in QUERY_CASES],
    ids=[case[0] for case in QUERY_CASES],
)
def test_each_bad_query_parameter_is_refused_naming_it_and_nothing_is_rendered(
    client: TestClient, code: str, fmt: str, params: dict[str, str], field: str
) -> None:
    before = qr.render_cache_info().misses
    r = get(client, f"/{code}.{fmt}", **params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in r.json()["errors"]] == [field]
    assert qr.render_cache_info().misses == before


@pytest.mark.parametrize(
    ("logo", "field"),
    [(case[2], case[3]) for case in LOGO_CASES],
    ids=[case[0] for case in LOGO_CASES],
)
def test_each_bad_logo_upload_is_refused_naming_it(
    api: TestClient, code: str, logo: bytes, field: str
) -> None:
    r = api.post(f"/api/v1/links/{code}/qr", files={"logo": ("logo.png", logo, "image/png")})
    assert r.status_code in (413, 422), r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in r.json()["errors"]] in ([field], ["body"])


def test_a_png_too_large_or_too_small_for_its_modules_is_refused_naming_dpi(
    client: TestClient, code: str
) -> None:
    for params in ({"size_mm": 10000, "dpi": 1200}, {"size_mm": 5000}, {"size_mm": 10, "dpi": 72}):
        r = get(client, f"/{code}.png", **params)
        assert r.status_code == 422, params
        assert r.json()["errors"][0]["field"] in ("size_mm", "dpi")
    # The same 5 m is fine as a vector file.
    assert get(client, f"/{code}.svg", size_mm=5000).status_code == 200


def test_an_unknown_code_is_404_and_other_dotted_paths_are_left_alone(
    client: TestClient, db: Database
) -> None:
    r = get(client, "/ZZZZZZZ.png")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["field"] == "code"
    # Not one of our formats: the route does not claim it (the redirect's own 404 page answers).
    other = client.get("/favicon.ico", headers={"user-agent": PHONE})
    assert other.status_code == 404
    assert other.headers["content-type"].startswith("text/html")


# --------------------------------------------------------------------------- caching


def test_responses_are_cacheable_with_a_strong_etag_and_if_none_match_gives_304(
    client: TestClient, code: str
) -> None:
    r = get(client, f"/{code}.png", size_mm=40, dpi=600)
    assert r.headers["cache-control"] == "public, max-age=86400"
    tag = r.headers["etag"]
    options = qr.parse_options({"size_mm": "40", "dpi": "600"})
    assert tag == qr.etag(qr_url(code), "png", options) and not tag.startswith("W/")
    assert r.headers["content-disposition"] == f'inline; filename="{code}-40mm.png"'
    for header in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        again = client.get(
            f"/{code}.png", params={"size_mm": 40, "dpi": 600}, headers={"if-none-match": header}
        )
        assert again.status_code == 304, header
        assert again.content == b""
        assert again.headers["etag"] == tag
    changed = client.get(
        f"/{code}.png", params={"size_mm": 41, "dpi": 600}, headers={"if-none-match": tag}
    )
    assert changed.status_code == 200 and changed.headers["etag"] != tag


def test_a_code_typed_in_lower_case_or_with_lookalikes_gets_the_same_file(
    client: TestClient, db: Database
) -> None:
    channel = make_channel(db)
    make_link(db, [channel.id], slug="SUMMER10")
    canonical = get(client, "/SUMMER10.svg")
    for typed in ("summer10", "SUMMERIO"):  # I and O read as 1 and 0
        r = get(client, f"/{typed}.svg")
        assert r.status_code == 200
        assert r.headers["etag"] == canonical.headers["etag"]
        assert r.content == canonical.content


def test_a_svg_runs_no_script_and_head_answers_without_a_body(
    client: TestClient, code: str
) -> None:
    r = get(client, f"/{code}.svg")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    head = client.head(f"/{code}.pdf")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == "application/pdf"


def test_a_disabled_or_expired_link_still_gets_its_image_and_says_so(
    client: TestClient, db: Database
) -> None:
    channel = make_channel(db)
    off = make_link(db, [channel.id], disabled=True).code
    past = (utcnow() - timedelta(days=1)).isoformat()
    expired = make_link(
        db, [channel.id], valid_from=(utcnow() - timedelta(days=9)).isoformat(), valid_until=past
    ).code
    for link_code, state in ((off, "disabled"), (expired, "expired")):
        r = get(client, f"/{link_code}.png")
        assert r.status_code == 200
        assert r.headers["x-link-state"] == state
        assert decode(rasterise("png", r.content)) == [qr_url(link_code)]


# --------------------------------------------------------------------------- logo upload


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_uploaded_logo_goes_in_the_middle_and_every_format_still_decodes(
    api: TestClient, db: Database, code: str, fmt: str
) -> None:
    r = api.post(
        f"/api/v1/links/{code}/qr",
        data={"format": fmt, "size_mm": "60", "dpi": "300", "caption": "Scan me", "ec": "L"},
        files={"logo": ("logo.png", make_logo(), "image/png")},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == qr.MEDIA_TYPES[fmt]
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["content-disposition"] == f'attachment; filename="{code}-60mm.{fmt}"'
    image = rasterise(fmt, r.content)
    assert decode(image) == [qr_url(code)]
    w = image.width
    middle = image.crop((w * 2 // 5, w * 2 // 5, w * 3 // 5, w * 3 // 5))
    blue = sum(n for n, (red, _, b) in middle.getcolors(1 << 20) if b > 150 and red < 120)
    # How large the logo may be depends on the symbol's codewords (see qr.LOGO_EC_BUDGET), so
    # the share varies by code; a tenth of the middle is blue only if the logo is there.
    assert blue > 0.1 * middle.width * middle.height
    with db.reader() as s:
        assert s.scalars(select(ApiKey)).one().last_used_at is not None


@pytest.mark.parametrize("damage", ["gaussian blur", "perspective warp", "all of it"])
def test_a_logo_code_from_the_api_decodes_after_damage(
    api: TestClient, code: str, damage: str
) -> None:
    r = api.post(
        f"/api/v1/links/{code}/qr",
        data={"format": "png"},
        files={"logo": ("logo.jpg", make_logo("JPEG"), "image/jpeg")},
    )
    image = Image.open(io.BytesIO(r.content)).convert("RGB")
    assert decode(DAMAGE[damage](image)) == [qr_url(code)]


def test_options_may_come_as_json_without_a_logo(api: TestClient, code: str) -> None:
    r = api.post(
        f"/api/v1/links/{code}/qr",
        json={"format": "png", "size_mm": 30.5, "dpi": 600, "inverted": False, "ec": "q"},
    )
    assert r.status_code == 200, r.text
    image = Image.open(io.BytesIO(r.content))
    assert image.size == (round(30.5 / 25.4 * 600),) * 2
    assert decode(image.convert("RGB")) == [qr_url(code)]
    svg = api.post(f"/api/v1/links/{code}/qr", json={})
    assert svg.headers["content-type"] == "image/svg+xml"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"json": {"logo": "https://evil.example/logo.png"}}, "logo"),
        ({"data": {"logo": "https://evil.example/logo.png"}}, "logo"),
        ({"json": {"format": "gif"}}, "format"),
        ({"json": {"size_mm": True}}, "size_mm"),
        ({"json": {"size_mm": [50]}}, "size_mm"),
        ({"json": {"size_mm": 1e300}}, "size_mm"),
        ({"json": {"dpi": 299.5}}, "dpi"),
        ({"json": {"fg": "#FFFFFF", "bg": "#000000"}}, "fg"),
        ({"json": {"colour": "red"}}, "colour"),
        ({"data": {"size_mm": "0"}, "files": {"logo": ("l.png", make_logo())}}, "size_mm"),
        ({"files": {"logo": ("l.png", make_logo()), "extra": ("x.png", b"x")}}, "body"),
        ({"files": {"other": ("x.png", make_logo())}}, "other"),
        ({"json": [1, 2]}, "body"),
        ({"content": b"size_mm=50", "headers": {"content-type": "text/plain"}}, "content-type"),
    ],
)
def test_bad_logo_requests_are_refused_naming_the_field(
    api: TestClient, code: str, kwargs: dict[str, Any], field: str
) -> None:
    r = api.post(f"/api/v1/links/{code}/qr", **kwargs)
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in r.json()["errors"]]


def test_the_logo_endpoint_needs_an_api_key_and_an_existing_link(
    client: TestClient, api_key: str, code: str
) -> None:
    files = {"logo": ("logo.png", make_logo(), "image/png")}
    r = client.post(f"/api/v1/links/{code}/qr", files=files)
    assert r.status_code == 401
    client.headers["authorization"] = f"Bearer {api_key}"
    missing = client.post("/api/v1/links/ZZZZZZZ/qr", files=files)
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["field"] == "code"


def test_the_openapi_document_describes_the_qr_endpoints(api: TestClient) -> None:
    paths = api.get("/api/v1/openapi.json").json()["paths"]
    logo = paths["/links/{code}/qr"]["post"]
    assert set(logo["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert set(logo["responses"]["200"]["content"]) == set(qr.MEDIA_TYPES.values())
    batch = paths["/qr/batch"]["post"]
    assert "application/zip" in batch["responses"]["200"]["content"]
    schema = batch["requestBody"]["content"]["application/json"]["schema"]
    assert {"placements", "codes", "campaign", "channels", "size_mm"} <= set(schema["properties"])
