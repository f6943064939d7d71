"""POST /api/v1/qr/batch: links for a campaign's placements, then a ZIP of their codes and a
manifest. Every code in the ZIP is decoded back; the stored links and placements are counted."""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select
from starlette.testclient import TestClient

from acquisition import links, qr, qrbatch, qrzip
from acquisition.db import Database
from acquisition.models import Link, Placement
from tests.conftest import BASE_URL, count
from tests.factories import make_channel, make_link
from tests.test_qr import decode, make_logo, pdf_page_size_pt, rasterise

BATCH = "/api/v1/qr/batch"


@pytest.fixture
def channel_id(db: Database) -> int:
    return make_channel(db, "telegram", "shop_bot").id


def billboards(n: int) -> list[dict[str, Any]]:
    return [
        {
            "name": f"Billboard {i}, Tverskaya",
            "kind": "outdoor",
            "address": f"Tverskaya {i}, Moscow",
            "cost": 1000 + i,
        }
        for i in range(1, n + 1)
    ]


def unzip(content: bytes) -> tuple[dict[str, bytes], list[dict[str, str]]]:
    archive = zipfile.ZipFile(io.BytesIO(content))
    assert archive.testzip() is None
    files = {name: archive.read(name) for name in archive.namelist()}
    rows = list(csv.DictReader(io.StringIO(files.pop("manifest.csv").decode("utf-8-sig"))))
    return files, rows


def test_a_batch_of_200_placements_gives_200_distinct_codes_that_decode(
    api: TestClient, db: Database, channel_id: int
) -> None:
    r = api.post(
        BATCH,
        json={
            "campaign": "black-friday",
            "channels": [channel_id],
            "source": "outdoor",
            "medium": "billboard",
            "format": "png",
            "size_mm": 30,
            "dpi": 150,
            "placements": billboards(200),
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"] == 'attachment; filename="black-friday-png.zip"'
    assert r.headers["x-codes"] == "200" and r.headers["x-codes-created"] == "200"
    files, rows = unzip(r.content)
    assert len(files) == 200 and len(rows) == 200
    assert list(rows[0]) == list(qrzip.MANIFEST_COLUMNS)
    codes = [row["code"] for row in rows]
    assert len(set(codes)) == 200
    for i, row in enumerate(rows, start=1):
        assert row["file"] == f"{i:03d}-billboard-{i}-tverskaya-{row['code']}.png"
        assert row["placement"] == f"Billboard {i}, Tverskaya"
        assert (row["kind"], row["address"]) == ("outdoor", f"Tverskaya {i}, Moscow")
        assert row["cost"] == f"{1000 + i}.00"
        assert row["short_url"] == f"{BASE_URL}/{row['code']}"
        assert row["qr_url"] == links.qr_url(BASE_URL, row["code"])
        assert row["created"] == "yes"
        image = Image.open(io.BytesIO(files[row["file"]]))
        assert image.size == (177, 177) and image.info["dpi"] == pytest.approx((150, 150), abs=0.05)
        assert decode(image.convert("RGB")) == [row["qr_url"]]
    assert count(db, Link) == 200 and count(db, Placement) == 200
    with db.reader() as s:
        stored = {link.code: link for link in s.scalars(select(Link))}
        for row in rows:
            link = stored[row["code"]]
            assert link.placement is not None and link.placement.name == row["placement"]
            assert link.placement.campaign == "black-friday"
            assert (link.campaign, link.source, link.medium) == (
                "black-friday",
                "outdoor",
                "billboard",
            )
            assert [t.channel_id for t in link.targets] == [channel_id]


@pytest.mark.parametrize("fmt", ["svg", "pdf"])
def test_vector_batches_decode_and_have_the_physical_size(
    api: TestClient, channel_id: int, fmt: str
) -> None:
    r = api.post(
        BATCH,
        json={
            "campaign": "spring",
            "channels": [channel_id],
            "format": fmt,
            "size_mm": 1500,
            "caption": "Scan to subscribe in Telegram",
            "fg": "#000080",
            "placements": billboards(4),
        },
    )
    assert r.status_code == 200, r.text
    files, rows = unzip(r.content)
    for row in rows:
        body = files[row["file"]]
        assert decode(rasterise(fmt, body)) == [row["qr_url"]]
        if fmt == "pdf":
            width, height = pdf_page_size_pt(body)
            assert width == pytest.approx(1500 / 25.4 * 72, abs=0.01)
            assert height == pytest.approx(width * (1 + qr.CAPTION_BAND), abs=0.01)
        else:
            assert b'width="1500mm"' in body


def test_sending_the_same_batch_again_reuses_the_links(
    api: TestClient, db: Database, channel_id: int
) -> None:
    body = {"campaign": "spring", "channels": [channel_id], "placements": billboards(3)}
    first = unzip(api.post(BATCH, json=body).content)[1]
    body["placements"] = [*billboards(4)]  # one more placement this time
    again = api.post(BATCH, json=body)
    assert again.headers["x-codes-created"] == "1"
    rows = unzip(again.content)[1]
    assert [row["code"] for row in rows[:3]] == [row["code"] for row in first]
    assert [row["created"] for row in rows] == ["no", "no", "no", "yes"]
    assert count(db, Link) == 4 and count(db, Placement) == 4
    # Other channels or another source are other links.
    body["source"] = "flyer"
    assert api.post(BATCH, json=body).headers["x-codes-created"] == "4"


def test_existing_codes_get_their_files_named_after_their_placements(
    api: TestClient, db: Database, channel_id: int
) -> None:
    placed = make_link(db, [channel_id], placement={"name": "Метро, Тверская", "kind": "print"})
    bare = make_link(db, [channel_id], slug="summer-sale")
    r = api.post(BATCH, json={"codes": [placed.code.lower(), "SUMMER-SALE"], "format": "png"})
    assert r.status_code == 200, r.text
    assert r.headers["x-codes-created"] == "0"
    files, rows = unzip(r.content)
    assert [row["file"] for row in rows] == [
        f"001-metro-tverskaya-{placed.code}.png",
        f"002-{bare.code}.png",
    ]
    assert rows[0]["placement"] == "Метро, Тверская" and rows[1]["placement"] == ""
    for row in rows:
        assert decode(Image.open(io.BytesIO(files[row["file"]])).convert("RGB")) == [row["qr_url"]]
    assert count(db, Link) == 2


def test_the_manifest_is_safe_to_open_in_a_spreadsheet(api: TestClient, channel_id: int) -> None:
    places = [
        {"name": '=HYPERLINK("http://evil.example","click")', "address": "+7 495 000"},
        {"name": "@SUM(A1)", "address": "-1"},
        {"name": "Plain", "address": "Tverskaya 1"},
    ]
    r = api.post(BATCH, json={"campaign": "c", "channels": [channel_id], "placements": places})
    assert r.status_code == 200, r.text
    files, rows = unzip(r.content)
    assert rows[0]["placement"] == "'" + places[0]["name"]
    assert rows[0]["address"] == "'+7 495 000"
    assert rows[1]["placement"] == "'@SUM(A1)" and rows[1]["address"] == "'-1"
    assert rows[2]["placement"] == "Plain"
    assert rows[0]["file"].startswith("001-hyperlink-http-evil-example-click-")
    assert all(name.isascii() and "/" not in name for name in files)


def test_a_logo_can_come_with_a_multipart_batch(api: TestClient, channel_id: int) -> None:
    import json

    batch = {
        "campaign": "c",
        "channels": [channel_id],
        "format": "png",
        "placements": billboards(2),
    }
    r = api.post(
        BATCH,
        data={"batch": json.dumps(batch)},
        files={"logo": ("logo.png", make_logo(), "image/png")},
    )
    assert r.status_code == 200, r.text
    files, rows = unzip(r.content)
    for row in rows:
        assert decode(Image.open(io.BytesIO(files[row["file"]])).convert("RGB")) == [row["qr_url"]]


BAD_BATCHES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "items without a name or with a negative cost",
        {"placements": [{"name": "ok"}, {"kind": "outdoor"}, {"name": "x", "cost": -1}]},
        ["placements.1.name", "placements.2.cost"],
    ),
    (
        "two placements of the same name",
        {"placements": [{"name": "A"}, {"name": "B"}, {"name": "A"}]},
        ["placements.2.name"],
    ),
    (
        "an unknown placement kind",
        {"placements": [{"name": "A", "kind": "moon"}]},
        ["placements.0.kind"],
    ),
    ("placements not a list", {"placements": "billboards"}, ["placements"]),
    ("no placements at all", {"placements": []}, ["placements"]),
    ("too many placements", {"placements": billboards(2001)}, ["placements"]),
    ("no campaign", {"campaign": None, "placements": billboards(1)}, ["campaign"]),
    ("a blank campaign", {"campaign": "  ", "placements": billboards(1)}, ["campaign"]),
    ("no channels", {"channels": [], "placements": billboards(1)}, ["channels"]),
    ("an unknown channel", {"channels": [987654], "placements": billboards(2)}, ["channels.0"]),
    ("an unknown field", {"colour": "red", "placements": billboards(1)}, ["colour"]),
    ("a bad format", {"format": "gif", "placements": billboards(1)}, ["format"]),
    ("a bad size", {"size_mm": "huge", "placements": billboards(1)}, ["size_mm"]),
    ("a low contrast", {"fg": "#AAAAAA", "placements": billboards(1)}, ["fg"]),
    ("a huge caption", {"caption": "x" * 500, "placements": billboards(1)}, ["caption"]),
    (
        "both placements and codes",
        {"placements": billboards(1), "codes": ["K7Q2XP9"]},
        ["placements"],
    ),
    (
        "a PNG over 12000 px",
        {"format": "png", "size_mm": 5000, "dpi": 72, "placements": billboards(1)},
        ["dpi"],
    ),
    (
        "2000 PNGs of 11811 px",
        {"format": "png", "size_mm": 1500, "dpi": 200, "placements": billboards(2000)},
        ["dpi"],
    ),
    (
        "PNGs with under two pixels a module",
        {"format": "png", "size_mm": 10, "dpi": 72, "placements": billboards(3)},
        ["dpi"],
    ),
]


@pytest.mark.parametrize(
    ("fields", "named"),
    [case[1:] for case in BAD_BATCHES],
    ids=[case[0] for case in BAD_BATCHES],
)
def test_a_bad_batch_is_refused_listing_every_problem_and_nothing_is_created(
    api: TestClient, db: Database, channel_id: int, fields: dict[str, Any], named: list[str]
) -> None:
    body = {"campaign": "spring", "channels": [channel_id], **fields}
    body = {key: value for key, value in body.items() if value is not None}
    before = qr.render_cache_info().misses
    r = api.post(BATCH, json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    reported = [e["field"] for e in r.json()["errors"]]
    assert reported and set(named) <= set(reported), reported
    assert count(db, Link) == 0 and count(db, Placement) == 0
    assert qr.render_cache_info().misses == before


def test_a_bad_item_is_counted_in_the_summary(api: TestClient, channel_id: int) -> None:
    places = [*billboards(5), {"kind": "outdoor"}]
    r = api.post(BATCH, json={"campaign": "c", "channels": [channel_id], "placements": places})
    assert r.json()["detail"] == "placements.5.name: is required"
    places.append({"name": "x", "cost": "lots"})
    r = api.post(BATCH, json={"campaign": "c", "channels": [channel_id], "placements": places})
    assert r.json()["detail"] == "2 of 7 placements are invalid; nothing was created"


def test_unknown_or_repeated_codes_are_each_named(
    api: TestClient, db: Database, channel_id: int
) -> None:
    code = make_link(db, [channel_id]).code
    r = api.post(BATCH, json={"codes": [code, "ZZZZZZZ", code.lower(), "a b"]})
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["codes.2", "codes.3"]
    r = api.post(BATCH, json={"codes": [code, "ZZZZZZZ"], "campaign": "spring"})
    assert [e["field"] for e in r.json()["errors"]] == ["campaign"]
    r = api.post(BATCH, json={"codes": [code, "ZZZZZZZ"]})
    assert [e["field"] for e in r.json()["errors"]] == ["codes.1"]


def test_the_batch_needs_an_api_key_before_anything_else(
    client: TestClient, db: Database, channel_id: int
) -> None:
    r = client.post(BATCH, json={"campaign": "c", "channels": [channel_id], "placements": []})
    assert r.status_code == 401
    assert count(db, Link) == 0


def test_the_zip_is_written_one_code_at_a_time() -> None:
    """The stream hands over each file as soon as it is drawn: no chunk holds two codes."""
    spec = qrbatch.parse({"codes": ["K7Q2XP9"], "format": "png"})
    items = [
        qrzip.Item(f"CODE{i:03d}", f"Board {i}", "outdoor", None, None, True) for i in range(30)
    ]
    seen: list[int] = []
    chunks = []
    for chunk in qrzip.zip_stream(
        items, spec.fmt, spec.options, BASE_URL, lambda done, _: seen.append(done)
    ):
        chunks.append(chunk)
    assert seen == list(range(1, 31))
    assert len(chunks) == 31  # one per code, then the manifest and the central directory
    one_png = len(qr.render(links.qr_url(BASE_URL, "CODE000"), "png", spec.options))
    assert max(len(c) for c in chunks[:30]) < one_png + 200
    files, rows = unzip(b"".join(chunks))
    assert len(files) == 30 and [row["code"] for row in rows] == [i.code for i in items]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Billboard 12, Tverskaya", "billboard-12-tverskaya"),
        ("Билборд Тверская 12", "bilbord-tverskaya-12"),
        ("Щит «Ярославское шоссе», 3-й км", "shchit-yaroslavskoe-shosse-3-y-km"),
        ("Café Crème", "cafe-creme"),
        ("../../etc/passwd", "etc-passwd"),
        ("北京", ""),
        ("A" * 60, "a" * 40),
        ("word " * 20, "word-word-word-word-word-word-word-word"),
    ],
)
def test_file_names_are_safe_ascii_slugs(name: str, expected: str) -> None:
    assert qrzip.slug(name) == expected
