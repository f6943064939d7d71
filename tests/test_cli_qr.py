"""`acquisition qr CODE` and `acquisition qr batch`: the files they write decode to the QR URL."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from acquisition import links
from acquisition.cli import main
from acquisition.config import Settings
from acquisition.db import Database
from acquisition.models import Link, Placement
from tests.conftest import BASE_URL, SECRET, count
from tests.factories import make_channel, make_link
from tests.test_qr import decode, make_logo, pdf_page_size_pt, rasterise


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, settings: Settings, db: Database) -> Database:
    monkeypatch.setenv("ACQUISITION_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ACQUISITION_BASE_URL", BASE_URL)
    monkeypatch.setenv("ACQUISITION_SECRET_KEY", SECRET)
    return db


@pytest.fixture
def channel_id(env: Database) -> int:
    return make_channel(env).id


@pytest.fixture
def code(env: Database, channel_id: int) -> str:
    return make_link(env, [channel_id], placement={"name": "Metro flyer B", "kind": "print"}).code


def test_qr_writes_a_png_of_the_size_and_dpi_asked_for(
    code: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "flyer.png"
    args = ["qr", code, "--format", "png", "--size-mm", "50", "--dpi", "300"]
    assert main([*args, "--fg", "#000080", "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    image = Image.open(out)
    assert image.size == (591, 591) and image.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    assert decode(image.convert("RGB")) == [links.qr_url(BASE_URL, code)]


@pytest.mark.parametrize("fmt", ["svg", "pdf"])
def test_qr_writes_vector_files_with_logo_and_caption_named_by_default(
    code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "logo.png").write_bytes(make_logo())
    args = ["qr", code.lower(), "--format", fmt, "--size-mm", "80", "--caption", "Scan me"]
    assert main([*args, "--logo", "logo.png"]) == 0
    body = (tmp_path / f"{code}-80mm.{fmt}").read_bytes()
    assert decode(rasterise(fmt, body)) == [links.qr_url(BASE_URL, code)]
    if fmt == "svg":
        assert ET.fromstring(body).get("width") == "80mm"
    else:
        assert pdf_page_size_pt(body)[0] == pytest.approx(80 / 25.4 * 72, abs=0.01)


def test_the_format_follows_the_output_name_and_dash_is_stdout(
    code: str, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert main(["qr", code, "--out", str(tmp_path / "x.pdf")]) == 0
    assert (tmp_path / "x.pdf").read_bytes().startswith(b"%PDF-")
    capsysbinary.readouterr()
    assert main(["qr", code, "--out", "-"]) == 0
    assert capsysbinary.readouterr().out.startswith(b"<?xml")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size-mm", "0"], "--size-mm"),
        (["--format", "png", "--size-mm", "5000"], "--dpi"),
        (["--fg", "#EEEEEE"], "--fg"),
        (["--logo", "https://evil.example/logo.png"], "never a URL"),
        (["--logo", "/no/such/logo.png"], "cannot read"),
    ],
)
def test_bad_options_exit_1_naming_the_flag(
    code: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["qr", code, *args, "--out", str(tmp_path / "x.svg")]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.svg").exists()


def test_an_unknown_code_exits_1(env: Database, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["qr", "ZZZZZZZ"]) == 1
    assert "no link with code" in capsys.readouterr().err


def write_csv(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


def test_qr_batch_reads_placements_from_csv_and_writes_a_zip_with_progress(
    env: Database, channel_id: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    places = tmp_path / "boards.csv"
    write_csv(
        places,
        [
            ["name", "kind", "address", "cost"],
            *[[f"Щит {i}", "outdoor", f"Тверская, {i}", str(1000 * i)] for i in range(1, 21)],
        ],
    )
    out = tmp_path / "codes.zip"
    args = ["qr", "batch", "--campaign", "spring", "--channel", str(channel_id)]
    args += ["--format", "png", "--size-mm", "1500", "--dpi", "72"]
    assert main([*args, "--placements", str(places), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "qr batch: 20/20 codes" in captured.err
    assert "20 codes (20 new links)" in captured.out
    archive = zipfile.ZipFile(out)
    rows = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode("utf-8-sig"))))
    assert len(rows) == 20 and not (tmp_path / "codes.zip.partial").exists()
    assert rows[0]["file"] == f"001-shchit-1-{rows[0]['code']}.png"
    assert rows[0]["address"] == "Тверская, 1" and rows[0]["cost"] == "1000.00"
    for row in rows[:3]:
        image = Image.open(io.BytesIO(archive.read(row["file"])))
        assert image.size == (4252, 4252)
        small = image.convert("RGB").resize((850, 850), Image.Resampling.BOX)
        assert decode(small) == [row["qr_url"]]
    assert count(env, Link) == 20 and count(env, Placement) == 20
    # Once more: the same placements reuse their links.
    assert main([*args, "--placements", str(places), "--out", str(out)]) == 0
    assert "20 codes (0 new links)" in capsys.readouterr().out
    assert count(env, Link) == 20


def test_qr_batch_takes_a_headerless_csv_or_existing_codes(
    env: Database, channel_id: int, code: str, tmp_path: Path
) -> None:
    places = tmp_path / "flyers.csv"
    write_csv(places, [["Flyer A", "print"], ["Flyer B", "print", "Metro", "300"]])
    out = tmp_path / "flyers.zip"
    args = ["qr", "batch", "--campaign", "spring", "--channel", str(channel_id)]
    assert main([*args, "--placements", str(places), "--out", str(out)]) == 0
    names = zipfile.ZipFile(out).namelist()
    assert len(names) == 3 and names[0].startswith("001-flyer-a-") and names[0].endswith(".svg")
    assert main(["qr", "batch", "--code", code, "--format", "pdf", "--out", str(out)]) == 0
    assert zipfile.ZipFile(out).namelist() == [f"001-metro-flyer-b-{code}.pdf", "manifest.csv"]


@pytest.mark.parametrize(
    ("rows", "extra", "message"),
    [
        ([["name", "colour"], ["A", "red"]], [], "unknown column 'colour'"),
        ([["name"], ["A"], ["A"]], [], "placements.1.name"),
        ([["A", "moon"]], [], "placements.0.kind"),
        ([["A"]], ["--channel", "999999"], "no channel with id 999999"),
        ([["A"]], ["--size-mm", "abc"], "--size-mm"),
    ],
)
def test_qr_batch_refuses_bad_input_and_creates_nothing(
    env: Database,
    channel_id: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rows: list[list[str]],
    extra: list[str],
    message: str,
) -> None:
    places = tmp_path / "bad.csv"
    write_csv(places, rows)
    channel = extra[1] if extra[:1] == ["--channel"] else str(channel_id)
    extra = [] if extra[:1] == ["--channel"] else extra
    args = ["qr", "batch", "--campaign", "c", "--channel", channel, *extra]
    assert main([*args, "--placements", str(places), "--out", str(tmp_path / "x.zip")]) == 1
    assert message in capsys.readouterr().err
    assert count(env, Link) == 0 and not (tmp_path / "x.zip").exists()
