"""QR rendering: every format is decoded back with zxing-cpp after a real rasteriser drew it
(cairosvg for SVG, PDFium through pypdfium2 for PDF), and PNGs also after simulated print and
photo damage. No database."""

from __future__ import annotations

import io
import math
import re
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
import qrcode
import qrcode.util
import zxingcpp
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from acquisition import qr
from acquisition.errors import Invalid
from acquisition.qr.symbol import _EC_CONSTANTS

URL = "HTTPS://GO.EXAMPLE.COM/K7Q2XP"
SVG_NS = "{http://www.w3.org/2000/svg}"
COLOUR_PAIRS = [
    ("#000080", "#FFFFFF"),  # navy on white
    ("#8B0000", "#FFFDD0"),  # dark red on cream
    ("#000000", "#FFFF99"),  # black on light yellow
]


# --------------------------------------------------------------------------- helpers


def _optional(name: str) -> ModuleType:
    """Import a rasteriser, or skip with the reason (cairosvg also needs Debian's libcairo2)."""
    try:
        return __import__(name)
    except (ImportError, OSError) as error:  # pragma: no cover - depends on the machine
        pytest.skip(f"{name} is not usable here: {error}")


def decode(image: Image.Image, **kwargs: Any) -> list[str]:
    found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode, **kwargs)
    return [barcode.text for barcode in found]


def svg_image(svg: bytes, width: int = 700) -> Image.Image:
    cairosvg = _optional("cairosvg")
    png = cairosvg.svg2png(bytestring=svg, output_width=width, background_color="white")
    return Image.open(io.BytesIO(png)).convert("RGB")


def pdf_image(pdf: bytes, dpi: float = 150) -> Image.Image:
    pdfium = _optional("pypdfium2")
    document = pdfium.PdfDocument(pdf)
    try:
        return document[0].render(scale=dpi / 72).to_pil().convert("RGB")
    finally:
        document.close()


def pdf_page_size_pt(pdf: bytes) -> tuple[float, float]:
    pdfium = _optional("pypdfium2")
    document = pdfium.PdfDocument(pdf)
    try:
        return document[0].get_size()
    finally:
        document.close()


def pdf_text(pdf: bytes) -> str:
    pdfium = _optional("pypdfium2")
    document = pdfium.PdfDocument(pdf)
    try:
        return document[0].get_textpage().get_text_range()
    finally:
        document.close()


def png_image(data: str, options: qr.QrOptions) -> Image.Image:
    return Image.open(io.BytesIO(qr.render_png(data, options)))


def rasterise(fmt: str, body: bytes) -> Image.Image:
    if fmt == "svg":
        return svg_image(body)
    if fmt == "pdf":
        return pdf_image(body)
    return Image.open(io.BytesIO(body)).convert("RGB")


def make_logo(fmt: str = "PNG", size: tuple[int, int] = (400, 300)) -> bytes:
    """A Telegram-ish logo: a blue disc with a white paper plane on a transparent ground."""
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.ellipse((w * 0.05, h * 0.05, w * 0.95, h * 0.95), fill=(34, 158, 217, 255))
    draw.polygon([(w * 0.25, h * 0.5), (w * 0.75, h * 0.27), (w * 0.62, h * 0.77)], fill="white")
    if fmt == "JPEG":
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def _jpeg(image: Image.Image, quality: int = 35) -> Image.Image:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


def _solve(matrix: list[list[float]], values: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (8x8 here; no numpy needed)."""
    n = len(values)
    rows = [[*row, value] for row, value in zip(matrix, values, strict=True)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(rows[r][col]))
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(n):
            if r != col:
                k = rows[r][col] / rows[col][col]
                rows[r] = [a - k * b for a, b in zip(rows[r], rows[col], strict=True)]
    return [rows[i][n] / rows[i][i] for i in range(n)]


def _perspective(image: Image.Image) -> Image.Image:
    """A phone held at an angle: the image's corners land on a keystone quad inside the frame."""
    w, h = image.size
    corners = [(0, 0), (w, 0), (w, h), (0, h)]
    quad = [(0.04 * w, 0.10 * h), (0.96 * w, 0.02 * h), (0.90 * w, 0.97 * h), (0.08 * w, 0.88 * h)]
    # PIL wants the map from output pixels (the quad) back to input pixels (the corners).
    matrix, values = [], []
    for (x, y), (u, v) in zip(quad, corners, strict=True):
        matrix.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        values.append(u)
        matrix.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        values.append(v)
    return image.transform(
        (w, h),
        Image.Transform.PERSPECTIVE,
        tuple(_solve(matrix, values)),
        resample=Image.Resampling.BICUBIC,
        fillcolor="white",
    )


DAMAGE: dict[str, Callable[[Image.Image], Image.Image]] = {
    "gaussian blur": lambda im: im.filter(ImageFilter.GaussianBlur(3)),
    "5 degree rotation": lambda im: im.rotate(
        5, resample=Image.Resampling.BICUBIC, expand=True, fillcolor="white"
    ),
    "perspective warp": _perspective,
    "contrast halved": lambda im: ImageEnhance.Contrast(im).enhance(0.5),
    "jpeg compression": lambda im: _jpeg(im, 20),
    "all of it": lambda im: _jpeg(
        ImageEnhance.Contrast(
            _perspective(
                im.filter(ImageFilter.GaussianBlur(2)).rotate(
                    5, resample=Image.Resampling.BICUBIC, expand=True, fillcolor="white"
                )
            )
        ).enhance(0.5),
        35,
    ),
}


# --------------------------------------------------------------------------- encoding


def test_an_upper_case_short_url_is_encoded_in_alphanumeric_mode_at_a_small_version() -> None:
    symbol = qr.encode(URL, "M")
    assert symbol.modes == ("alphanumeric",)
    assert symbol.version <= 2
    assert symbol.size == 4 * symbol.version + 17
    # The same URL in lower case needs byte mode and a larger symbol: why callers upper-case.
    lower = qr.encode(URL.lower(), "M")
    assert lower.modes == ("byte",)
    assert lower.version > symbol.version


def test_the_codeword_map_matches_what_qrcode_places_for_every_version_and_level() -> None:
    for version in range(1, 41):
        order = qr.data_module_order(version)
        for ec in "LMQH":
            symbol = qrcode.QRCode(
                version=version, error_correction=_EC_CONSTANTS[ec], border=0, mask_pattern=5
            )
            symbol.add_data("HTTPS://K7")
            symbol.make(fit=False)
            codewords = qrcode.util.create_data(version, _EC_CONSTANTS[ec], symbol.data_list)
            owner, correctable = qr.codeword_blocks(version, ec)
            assert len(owner) == len(codewords)
            assert len(order) - 8 * len(codewords) in (0, 3, 4, 7)  # remainder bits
            mask = qrcode.util.mask_func(5)
            bits = [symbol.modules[r][c] ^ mask(r, c) for r, c in order[: 8 * len(codewords)]]
            read = [
                int("".join("1" if b else "0" for b in bits[i : i + 8]), 2)
                for i in range(0, len(bits), 8)
            ]
            assert read == codewords, (version, ec)
            assert len(correctable) == max(owner) + 1


# --------------------------------------------------------------------------- every format decodes


@pytest.mark.parametrize("fmt", ["svg", "png", "pdf"])
@pytest.mark.parametrize(("fg", "bg"), COLOUR_PAIRS)
@pytest.mark.parametrize("size_mm", [20.0, 50.0, 300.0])
def test_every_format_decodes_to_the_url_in_several_sizes_and_colours(
    fmt: str, fg: str, bg: str, size_mm: float
) -> None:
    dpi = 600 if size_mm == 20.0 else 300 if size_mm == 50.0 else 72
    options = qr.QrOptions(size_mm=size_mm, dpi=dpi, fg=fg, bg=bg)
    assert decode(rasterise(fmt, qr.render(URL, fmt, options))) == [URL]  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["svg", "png", "pdf"])
def test_a_caption_goes_under_the_code_and_the_code_still_decodes(fmt: str) -> None:
    options = qr.QrOptions(caption="Scan to subscribe in Telegram", fg="#000080")
    image = rasterise(fmt, qr.render(URL, fmt, options))  # type: ignore[arg-type]
    assert decode(image) == [URL]
    w, h = image.size
    assert h == pytest.approx(w * (1 + qr.CAPTION_BAND), abs=2)
    band = image.crop((0, w, w, h)).convert("L")
    assert band.getextrema()[0] < 100  # there is ink in the band


@pytest.mark.parametrize("fmt", ["svg", "png", "pdf"])
def test_a_logo_forces_level_h_and_every_format_still_decodes(fmt: str) -> None:
    options = qr.QrOptions(logo=make_logo(), caption="Scan to subscribe", ec="L")
    assert options.ec == "H"
    image = rasterise(fmt, qr.render(URL, fmt, options))  # type: ignore[arg-type]
    assert decode(image) == [URL]
    # The logo's blue fills much of the middle of the code.
    w = image.width
    middle = image.convert("RGB").crop((w * 2 // 5, w * 2 // 5, w * 3 // 5, w * 3 // 5))
    blue = sum(n for n, (r, _, b) in middle.getcolors(1 << 20) if b > 150 and r < 120)
    assert blue > 0.3 * middle.width * middle.height


def test_a_jpeg_logo_and_a_webp_logo_are_accepted_too() -> None:
    for fmt in ("JPEG", "WEBP"):
        options = qr.QrOptions(logo=make_logo(fmt))
        assert decode(png_image(URL, options)) == [URL]


@pytest.mark.parametrize("length", [10, 29, 90, 240, 300, 500])
def test_the_logo_pad_keeps_clear_of_function_patterns_and_within_each_blocks_budget(
    length: int,
) -> None:
    data = ("HTTPS://GO.EXAMPLE.COM/" + "K7Q2XP" * 100)[:length]
    plain = qr.encode(data, "H", False)
    with_logo = qr.encode(data, "H", True)
    assert with_logo.pad is not None
    off, side = with_logo.pad
    n = with_logo.size
    assert side >= 5
    assert side * side <= qr.LOGO_MAX_AREA * n * n
    assert off >= 9 and off + side <= n - 9  # finders, separators, format/version info
    if plain.version == with_logo.version:
        # Count the codewords the pad breaks (a dark module turned light) in each block.
        owner, correctable = qr.codeword_blocks(with_logo.version, "H")
        broken: set[int] = set()
        for i, (r, c) in enumerate(qr.data_module_order(with_logo.version)[: 8 * len(owner)]):
            if plain.dark[r][c] and not with_logo.dark[r][c]:
                broken.add(i // 8)
        per_block = [0] * len(correctable)
        for i in broken:
            per_block[owner[i]] += 1
        for count, capacity in zip(per_block, correctable, strict=True):
            assert count <= qr.LOGO_EC_BUDGET * capacity
    dpi = max(300, math.ceil(8 * (n + 8) / (60 / 25.4)))  # >= 8 px per module
    options = qr.QrOptions(size_mm=60, dpi=min(dpi, 1200), logo=make_logo())
    assert decode(png_image(data, options)) == [data]


# --------------------------------------------------------------------------- physical size


@pytest.mark.parametrize(
    ("size_mm", "dpi", "pixels"),
    [(50.0, 300, 591), (1500.0, 72, 4252), (20.0, 600, 472), (33.3, 301, 395)],
)
def test_the_png_has_the_exact_pixel_size_and_carries_its_dpi(
    size_mm: float, dpi: int, pixels: int
) -> None:
    options = qr.QrOptions(size_mm=size_mm, dpi=dpi)
    assert round(size_mm / 25.4 * dpi) == pixels
    image = png_image(URL, options)
    assert image.size == (pixels, pixels)
    assert image.info["dpi"] == pytest.approx((dpi, dpi), abs=0.01)
    assert decode(image) == [URL]


def test_a_plain_png_is_a_two_colour_palette_image() -> None:
    image = png_image(URL, qr.QrOptions(fg="#000080", bg="#FFFDD0"))
    assert image.mode == "P"
    assert sorted(c for _, c in image.convert("RGB").getcolors()) == [(0, 0, 128), (255, 253, 208)]


def test_png_modules_sit_exactly_where_the_symbol_says() -> None:
    options = qr.QrOptions(size_mm=33.3, dpi=301, quiet=5)  # 395 px over 35 modules: not whole
    symbol = qr.encode(URL, options.ec)
    image = png_image(URL, options).convert("L")
    n = symbol.size + 2 * options.quiet
    scale = image.width / n
    for y, row in enumerate(symbol.dark):
        for x, dark in enumerate(row):
            centre = (
                int((x + options.quiet + 0.5) * scale),
                int((y + options.quiet + 0.5) * scale),
            )
            assert (image.getpixel(centre) < 128) == dark


def test_svg_modules_rasterised_by_cairo_sit_exactly_where_the_symbol_says() -> None:
    options = qr.QrOptions()
    symbol = qr.encode(URL, options.ec)
    n = symbol.size + 2 * options.quiet
    image = svg_image(qr.render_svg(URL, options), width=n * 10).convert("L")
    for y, row in enumerate(symbol.dark):
        for x, dark in enumerate(row):
            centre = ((x + options.quiet) * 10 + 5, (y + options.quiet) * 10 + 5)
            assert (image.getpixel(centre) < 128) == dark


@pytest.mark.parametrize(("size_mm", "dpi", "quiet"), [(50, 300, 4), (33.3, 301, 6), (1500, 72, 4)])
def test_the_png_quiet_zone_is_pure_background(size_mm: float, dpi: int, quiet: int) -> None:
    options = qr.QrOptions(size_mm=size_mm, dpi=dpi, quiet=quiet, fg="#8B0000", bg="#FFFDD0")
    image = png_image(URL, options).convert("RGB")
    n = qr.encode(URL, "M").size + 2 * quiet
    side = image.width
    border = math.floor(quiet * side / n)
    bg = (255, 253, 208)
    for box in [
        (0, 0, side, border),
        (0, side - border, side, side),
        (0, 0, border, side),
        (side - border, 0, side, side),
    ]:
        assert image.crop(box).getcolors() == [((box[2] - box[0]) * (box[3] - box[1]), bg)]
    # ...and no wider than one pixel more: the first finder starts right after it.
    assert image.getpixel((border + 1, border + 1)) == (139, 0, 0)


def test_svg_states_its_size_in_mm_with_a_view_box_in_modules_and_one_path() -> None:
    svg = qr.render_svg(URL, qr.QrOptions(size_mm=42.5, quiet=6))
    root = ET.fromstring(svg)
    n = qr.encode(URL, "M").size + 12
    assert root.get("width") == "42.5mm"
    assert root.get("height") == "42.5mm"
    assert root.get("viewBox") == f"0 0 {n} {n}"
    paths = root.findall(f"{SVG_NS}path")
    assert len(paths) == 1
    assert paths[0].get("fill") == "#000000"
    assert root.find(f"{SVG_NS}script") is None


def test_svg_with_caption_grows_in_height_by_the_caption_band() -> None:
    root = ET.fromstring(qr.render_svg(URL, qr.QrOptions(size_mm=50, caption="Hi")))
    assert root.get("width") == "50mm"
    assert root.get("height") == f"{50 * (1 + qr.CAPTION_BAND):g}mm"
    text = root.find(f"{SVG_NS}text")
    assert text is not None and text.text == "Hi"
    assert "sans-serif" in (text.get("font-family") or "")


def test_caption_markup_comes_out_escaped_in_svg() -> None:
    caption = "<script>alert('x')</script> & \"more\""
    svg = qr.render_svg(URL, qr.QrOptions(caption=caption))
    assert b"<script" not in svg
    assert b"&lt;script&gt;" in svg
    root = ET.fromstring(svg)  # still well-formed XML
    assert root.find(f"{SVG_NS}script") is None
    text = root.find(f"{SVG_NS}text")
    assert text is not None and text.text == caption


@pytest.mark.parametrize(("size_mm", "caption"), [(50.0, None), (1500.0, None), (50.0, "Scan")])
def test_the_pdf_page_is_the_physical_size_in_points(size_mm: float, caption: str | None) -> None:
    pdf = qr.render_pdf(URL, qr.QrOptions(size_mm=size_mm, caption=caption))
    width = size_mm / 25.4 * 72
    height = width * (1 + qr.CAPTION_BAND) if caption else width
    match = re.search(rb"/MediaBox \[0 0 ([0-9.]+) ([0-9.]+)\]", pdf)
    assert match is not None
    assert float(match.group(1)) == pytest.approx(width, abs=1e-3)
    assert float(match.group(2)) == pytest.approx(height, abs=1e-3)
    assert pdf_page_size_pt(pdf) == pytest.approx((width, height), abs=1e-2)


def test_pdf_modules_are_vector_rectangles_not_an_image() -> None:
    pdf = qr.render_pdf(URL, qr.QrOptions())
    assert b"/Image" not in pdf
    stream = re.search(rb"stream\n(.*?)\nendstream", pdf, re.S)
    assert stream is not None
    content = zlib.decompress(stream.group(1)).decode()
    symbol = qr.encode(URL, "M")
    assert content.count(" re") == len(symbol.runs) + 1  # + the background
    assert "0 0 0 1 k" in content  # black as pure K ink


def test_pdf_caption_is_helvetica_text_with_parentheses_and_backslashes_escaped() -> None:
    caption = r"Scan (now) \ win 100% café"
    pdf = qr.render_pdf(URL, qr.QrOptions(caption=caption))
    assert b"/BaseFont /Helvetica" in pdf
    assert pdf_text(pdf).strip() == caption
    assert decode(pdf_image(pdf)) == [URL]


def test_a_caption_outside_latin_becomes_a_print_resolution_stencil_in_pdf() -> None:
    caption = "Сканируйте, чтобы подписаться"
    pdf = qr.render_pdf(URL, qr.QrOptions(caption=caption))
    assert b"/ImageMask true" in pdf
    assert b"/Helvetica" not in pdf
    image = pdf_image(pdf)
    assert decode(image) == [URL]
    w = image.width
    assert image.crop((0, w, w, image.height)).convert("L").getextrema()[0] < 100


# --------------------------------------------------------------------------- damage


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_a_flyer_png_still_decodes_after_print_and_photo_damage(damage: str) -> None:
    image = png_image(URL, qr.QrOptions(size_mm=50, dpi=300, fg="#000080")).convert("RGB")
    assert decode(DAMAGE[damage](image)) == [URL]


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_a_flyer_png_with_logo_and_caption_still_decodes_after_damage(damage: str) -> None:
    options = qr.QrOptions(size_mm=50, dpi=300, logo=make_logo(), caption="Scan to subscribe")
    image = png_image(URL, options).convert("RGB")
    assert decode(DAMAGE[damage](image)) == [URL]


# --------------------------------------------------------------------------- colours


def test_contrast_is_refused_just_below_three_to_one_and_accepted_just_above() -> None:
    assert qr.contrast_ratio("#000000", "#FFFFFF") == pytest.approx(21)
    assert qr.contrast_ratio("#969696", "#FFFFFF") == pytest.approx(2.96, abs=0.01)
    with pytest.raises(Invalid) as refused:
        qr.parse_options({"fg": "#969696"})
    assert refused.value.field == "fg"
    assert "contrast" in refused.value.message
    assert qr.contrast_ratio("#949494", "#FFFFFF") == pytest.approx(3.03, abs=0.01)
    options = qr.parse_options({"fg": "#949494"})
    image = png_image(URL, options).convert("RGB")
    assert decode(DAMAGE["all of it"](image)) == [URL]


def test_a_dark_background_is_judged_by_the_same_ratio() -> None:
    with pytest.raises(Invalid):
        qr.QrOptions(fg="#000000", bg="#505050")  # 2.6:1
    options = qr.QrOptions(fg="#000000", bg="#5C5C5C")  # 3.1:1
    assert decode(DAMAGE["contrast halved"](png_image(URL, options).convert("RGB"))) == [URL]


def test_an_inverted_code_is_refused_unless_asked_for_and_then_decodes_inverted() -> None:
    with pytest.raises(Invalid) as refused:
        qr.parse_options({"fg": "#FFFFFF", "bg": "#000080"})
    assert refused.value.field == "fg"
    assert "light modules on a dark background" in refused.value.message
    assert "inverted=1" in refused.value.message
    options = qr.parse_options({"fg": "#FFFFFF", "bg": "#000080", "inverted": "1"})
    for fmt in ("png", "svg", "pdf"):
        image = rasterise(fmt, qr.render(URL, fmt, options))  # type: ignore[arg-type]
        assert decode(image, try_invert=False) == []  # really light on dark...
        assert decode(image, try_invert=True) == [URL]  # ...and readable by inverting scanners


# --------------------------------------------------------------------------- parameters


def test_good_parameters_are_parsed_and_normalised() -> None:
    logo = make_logo()
    options = qr.parse_options(
        {
            "size_mm": "75,5",
            "dpi": "600",
            "ec": "q",
            "fg": "1a2b3c",
            "bg": "#ffffff",
            "quiet": "6",
            "caption": "  Scan me  ",
            "inverted": "false",
            "utm_source": "ignored",
        }
    )
    assert options == qr.QrOptions(
        size_mm=75.5, dpi=600, ec="Q", fg="#1A2B3C", bg="#FFFFFF", quiet=6, caption="Scan me"
    )
    assert qr.parse_options({}, logo=logo).ec == "H"
    assert qr.parse_options({"caption": "   "}).caption is None
    assert qr.parse_options({}, logo=b"").logo is None  # an empty upload field


TOO_BIG_LOGO = b"\x89PNG" + b"\0" * (2 * 1024 * 1024)


def _png(size: tuple[int, int], fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, "white").save(buf, fmt)
    return buf.getvalue()


BAD_PARAMETERS: list[tuple[str, dict[str, str], bytes | None, str]] = [
    ("size_mm not a number", {"size_mm": "abc"}, None, "size_mm"),
    ("size_mm NaN", {"size_mm": "nan"}, None, "size_mm"),
    ("size_mm infinite", {"size_mm": "inf"}, None, "size_mm"),
    ("size_mm exponent", {"size_mm": "1e3"}, None, "size_mm"),
    ("size_mm zero", {"size_mm": "0"}, None, "size_mm"),
    ("size_mm negative", {"size_mm": "-50"}, None, "size_mm"),
    ("size_mm over 5 m", {"size_mm": "5001"}, None, "size_mm"),
    ("10 m at 1200 dpi", {"size_mm": "10000", "dpi": "1200"}, None, "dpi"),
    ("dpi too low", {"dpi": "10"}, None, "dpi"),
    ("dpi too high", {"dpi": "2400"}, None, "dpi"),
    ("dpi fractional", {"dpi": "300.5"}, None, "dpi"),
    ("ec unknown", {"ec": "Z"}, None, "ec"),
    ("fg a name", {"fg": "red"}, None, "fg"),
    ("fg five digits", {"fg": "#12345"}, None, "fg"),
    ("bg not hex", {"bg": "#GGGGGG"}, None, "bg"),
    ("fg equals bg", {"fg": "#FFFFFF", "bg": "#FFFFFF"}, None, "fg"),
    ("low contrast", {"fg": "#AAAAAA", "bg": "#FFFFFF"}, None, "fg"),
    ("inverted without the flag", {"fg": "#FFFFFF", "bg": "#000000"}, None, "fg"),
    ("inverted flag unreadable", {"inverted": "maybe"}, None, "inverted"),
    ("quiet too small", {"quiet": "2"}, None, "quiet"),
    ("quiet too large", {"quiet": "21"}, None, "quiet"),
    ("quiet not a number", {"quiet": "four"}, None, "quiet"),
    ("caption too long", {"caption": "x" * 81}, None, "caption"),
    ("caption huge", {"caption": "x" * 1_000_000}, None, "caption"),
    ("caption with a newline", {"caption": "Scan\nme"}, None, "caption"),
    ("caption with a NUL", {"caption": "Scan\x00"}, None, "caption"),
    ("caption with a bidi override", {"caption": "Scan \u202eem"}, None, "caption"),
    ("logo not an image", {}, b"<svg xmlns='http://www.w3.org/2000/svg'/>", "logo"),
    ("logo truncated", {}, make_logo()[:200], "logo"),
    ("logo a GIF", {}, _png((10, 10), "GIF"), "logo"),
    ("logo over 2 MB", {}, TOO_BIG_LOGO, "logo"),
    ("logo over 4000 px", {}, _png((4001, 1)), "logo"),
]


@pytest.mark.parametrize(
    ("params", "logo", "field"),
    [case[1:] for case in BAD_PARAMETERS],
    ids=[case[0] for case in BAD_PARAMETERS],
)
def test_each_bad_parameter_is_refused_naming_it(
    params: dict[str, str], logo: bytes | None, field: str
) -> None:
    with pytest.raises(Invalid) as refused:
        qr.parse_options(params, logo=logo)
    assert refused.value.field == field
    assert refused.value.status == 422
    assert refused.value.message


def test_a_png_too_large_says_how_large_and_what_the_maximum_is() -> None:
    with pytest.raises(Invalid) as refused:
        qr.parse_options({"size_mm": "10000", "dpi": "1200"})
    message = refused.value.message
    assert "472441 px" in message and "12000 px" in message
    # Vector formats have no pixel limit; the PNG of the same options refuses at render time.
    options = qr.QrOptions(size_mm=5000)
    assert qr.render_svg(URL, options).startswith(b"<?xml")
    with pytest.raises(Invalid) as too_big:
        qr.render_png(URL, options)
    assert too_big.value.field == "dpi"


def test_a_png_with_under_two_pixels_per_module_is_refused() -> None:
    with pytest.raises(Invalid) as refused:
        qr.render_png(URL, qr.QrOptions(size_mm=10, dpi=72))  # 28 px for 33 modules
    assert refused.value.field == "dpi"


def test_options_built_in_code_are_validated_too() -> None:
    with pytest.raises(Invalid) as refused:
        qr.QrOptions(quiet=2)
    assert refused.value.field == "quiet"
    with pytest.raises(Invalid):
        qr.QrOptions(size_mm=float("nan"))
    with pytest.raises(Invalid):
        qr.render(URL, "gif", qr.QrOptions())  # type: ignore[arg-type]
    with pytest.raises(Invalid) as empty:
        qr.render_svg("", qr.QrOptions())
    assert empty.value.field == "data"


# --------------------------------------------------------------------------- etag and cache


def test_the_etag_is_a_pure_strong_tag_of_everything_that_shapes_the_file() -> None:
    base = qr.QrOptions()
    tag = qr.etag(URL, "svg", base)
    assert re.fullmatch(r'"[0-9a-f]{32}"', tag)
    assert qr.etag(URL, "svg", qr.QrOptions()) == tag
    assert qr.etag(URL, "png", base) != tag
    assert qr.etag(URL + "X", "svg", base) != tag
    assert qr.etag(URL, "svg", qr.QrOptions(caption="Hi")) != tag
    assert qr.etag(URL, "svg", qr.QrOptions(dpi=600)) == tag  # dpi only matters to PNG
    assert qr.etag(URL, "png", qr.QrOptions(dpi=600)) != qr.etag(URL, "png", base)
    one, two = make_logo(), make_logo(size=(300, 300))
    assert qr.etag(URL, "svg", qr.QrOptions(logo=one)) != qr.etag(
        URL, "svg", qr.QrOptions(logo=two)
    )


@pytest.mark.parametrize("fmt", ["svg", "png", "pdf"])
def test_rendering_is_deterministic(fmt: str) -> None:
    options = qr.QrOptions(logo=make_logo(), caption="Scan to subscribe")
    assert qr.render(URL, fmt, options) == qr.render(URL, fmt, options)  # type: ignore[arg-type]


def test_render_cached_returns_the_same_file_and_counts_hits() -> None:
    qr.render_cache_clear()
    options = qr.QrOptions(caption="cached")
    first = qr.render_cached(URL, "png", options)
    again = qr.render_cached(URL, "png", qr.QrOptions(caption="cached"))
    assert again is first
    info = qr.render_cache_info()
    assert (info.hits, info.misses, info.currsize) == (1, 1, 1)
    assert info.bytes == len(first)
    assert qr.MEDIA_TYPES == {"svg": "image/svg+xml", "png": "image/png", "pdf": "application/pdf"}
    qr.render_cache_clear()
