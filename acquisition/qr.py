"""Print-ready QR codes: vector SVG and PDF at any size, PNG at an exact physical size and DPI.

Pure: no database, no web framework, no network. The `qrcode` package only encodes (version,
error correction, mask choice); every output format is drawn here:

- SVG: one `<path>` of merged horizontal runs in a viewBox measured in modules, width/height in mm.
- PNG: the symbol at one pixel per module, scaled with nearest-neighbour to the exact pixel size,
  kept as a palette image (a plain code saves as a 1-bit PNG), dpi stored in the pHYs chunk.
- PDF: a hand-written single page whose MediaBox is the physical size; modules are filled
  rectangles in one path, the caption is Helvetica text (or, for text outside WinAnsi, a 1-bit
  stencil image at print resolution), the logo an RGB image XObject.

Choosing the mask dominates the cost of a code, so `encode` is cached, and `render_cached` keeps
finished files in a small LRU bounded by entries and bytes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import math
import os
import re
import threading
import unicodedata
import warnings
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import qrcode
import qrcode.base
import qrcode.constants
import qrcode.exceptions
import qrcode.util
from PIL import Image, ImageDraw, ImageFont, ImageOps

from acquisition.errors import Invalid

Format = Literal["svg", "png", "pdf"]
EcLevel = Literal["L", "M", "Q", "H"]

MEDIA_TYPES: dict[str, str] = {"svg": "image/svg+xml", "png": "image/png", "pdf": "application/pdf"}

# Bumped whenever the drawing changes, so ETags and caches of older renderings go stale.
RENDERER_VERSION = "qr-1"

MIN_SIZE_MM, MAX_SIZE_MM = 10.0, 5000.0
MIN_DPI, MAX_DPI = 72, 1200
MAX_PNG_PX = 12_000
MIN_PX_PER_MODULE = 2  # below this nearest-neighbour modules vary by 50 % or more: unreadable
MIN_QUIET, MAX_QUIET = 4, 20
MAX_CAPTION = 80
MAX_DATA = 2048

# WCAG 2 contrast ratio (L1 + 0.05) / (L2 + 0.05), from 1:1 to 21:1. 3:1 is the usual floor for
# QR codes and WCAG's for graphics; on white paper it means modules at most 30 % reflective, ISO/IEC
# 15415's symbol contrast grade A. Measured with zxing-cpp on PNGs blurred, rotated, warped,
# JPEG-compressed and with contrast cut to 35 %: grey modules on white decode down to ~2:1 and
# black modules on a grey background down to ~3:1 (2.6:1 fails), so 3:1 is the lowest ratio that
# survives that damage on light and dark backgrounds alike; at 50 % contrast everything from ~2:1
# decodes, a 1.5x margin for ink, paper and weaker scanner apps. Brand colours on white: navy 16:1,
# dark red 10:1, Telegram blue #229ED9 3.02:1 (passes, just), orange #FF6600 2.94:1 and WhatsApp
# green #25D366 1.98:1 are refused (use their darker shades).
MIN_CONTRAST = 3.0

# A logo forces level H. The bg-coloured pad under it is a centred square of whole modules, clear
# of finder patterns, separators, format and version info, at most LOGO_MAX_AREA of the symbol,
# and sized per symbol so that in every Reed-Solomon block the codewords it breaks (those with a
# dark module under the pad) use at most LOGO_EC_BUDGET of what the block can correct: the rest
# is left for dirt, blur and glare. (Covering a share of the *area* is not enough: at version 13
# a pad of 11 % of the area already breaks more codewords in one block than H can correct.)
LOGO_MAX_AREA = 0.20
LOGO_EC_BUDGET = 2 / 3
LOGO_MAX_BYTES = 2 * 1024 * 1024
LOGO_MAX_SIDE = 4000
LOGO_FORMATS = ("PNG", "JPEG", "WEBP")
LOGO_EMBED_SIDE = 1024  # SVG/PDF embed the logo at most this many pixels on a side
LOGO_KEEP_SIDE = 2048  # decoded logos are kept this large at most (43 mm at 1200 dpi)

# Caption band under the code, as shares of the code's side.
CAPTION_BAND = 0.11
CAPTION_FONT = 0.06
CAPTION_MAX_WIDTH = 0.92

_FONT_FILES = (
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",  # Helvetica metrics
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)
_SVG_FONT = "Helvetica, Arial, 'Liberation Sans', sans-serif"

_EC_CONSTANTS = {
    "L": qrcode.constants.ERROR_CORRECT_L,
    "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}
_MODE_NAMES = {
    qrcode.util.MODE_NUMBER: "numeric",
    qrcode.util.MODE_ALPHA_NUM: "alphanumeric",
    qrcode.util.MODE_8BIT_BYTE: "byte",
    qrcode.util.MODE_KANJI: "kanji",
}
_COLOUR = re.compile(r"#?([0-9A-Fa-f]{6})")
_UINT = re.compile(r"[0-9]{1,6}")
_DECIMAL = re.compile(r"[0-9]{1,6}(?:[.,][0-9]{1,6})?")
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class QrOptions:
    """How to draw a code; constructing one validates it (errors name the query parameter)."""

    size_mm: float = 50.0  # side of the printed code incl. quiet zone (caption adds height below)
    dpi: int = 300  # PNG only
    ec: EcLevel = "M"  # forced to "H" when there is a logo
    fg: str = "#000000"  # #RRGGBB, normalised to upper case
    bg: str = "#FFFFFF"
    quiet: int = 4  # modules, >= 4
    caption: str | None = None  # <= 80 chars, no control chars
    allow_inverted: bool = False  # light modules on dark only when asked
    logo: bytes | None = field(default=None, repr=False)  # PNG/JPEG/WebP bytes, never a URL

    def __post_init__(self) -> None:
        size = self.size_mm
        if isinstance(size, bool) or not isinstance(size, int | float) or not math.isfinite(size):
            raise Invalid("size_mm must be a number of millimetres", field="size_mm")
        if not MIN_SIZE_MM <= size <= MAX_SIZE_MM:
            raise Invalid(
                f"size_mm must be between {MIN_SIZE_MM:g} and {MAX_SIZE_MM:g} mm", field="size_mm"
            )
        object.__setattr__(self, "size_mm", float(size))
        if isinstance(self.dpi, bool) or not isinstance(self.dpi, int):
            raise Invalid("dpi must be a whole number", field="dpi")
        if not MIN_DPI <= self.dpi <= MAX_DPI:
            raise Invalid(f"dpi must be between {MIN_DPI} and {MAX_DPI}", field="dpi")
        if self.ec not in _EC_CONSTANTS:
            raise Invalid("ec must be one of L, M, Q, H", field="ec")
        if isinstance(self.quiet, bool) or not isinstance(self.quiet, int):
            raise Invalid("quiet must be a whole number of modules", field="quiet")
        if not MIN_QUIET <= self.quiet <= MAX_QUIET:
            raise Invalid(
                f"quiet must be between {MIN_QUIET} and {MAX_QUIET} modules "
                "(scanners need at least 4 light modules around the code)",
                field="quiet",
            )
        fg = _colour(self.fg, "fg")
        bg = _colour(self.bg, "bg")
        object.__setattr__(self, "fg", fg)
        object.__setattr__(self, "bg", bg)
        ratio = contrast_ratio(fg, bg)
        if ratio < MIN_CONTRAST:
            raise Invalid(
                f"fg and bg contrast {ratio:.2f}:1 is too low to scan reliably once printed; "
                f"at least {MIN_CONTRAST:g}:1 is needed",
                field="fg",
            )
        if luminance(fg) > luminance(bg) and not self.allow_inverted:
            raise Invalid(
                "fg is lighter than bg: light modules on a dark background are not read by many "
                "scanner apps; pass inverted=1 to force it",
                field="fg",
            )
        if self.caption is not None:
            object.__setattr__(self, "caption", _caption(self.caption))
        if self.logo is not None:
            if not isinstance(self.logo, bytes):
                raise Invalid("logo must be the uploaded image bytes", field="logo")
            _logo_image(self.logo)  # validates (and caches the decoded image)
            object.__setattr__(self, "ec", "H")

    @property
    def png_side_px(self) -> int:
        return round(self.size_mm / 25.4 * self.dpi)


def _colour(value: object, name: str) -> str:
    if not isinstance(value, str) or not (m := _COLOUR.fullmatch(value.strip())):
        raise Invalid(f"{name} must be a colour written #RRGGBB, e.g. #1A2B3C", field=name)
    return "#" + m.group(1).upper()


def _caption(value: object) -> str | None:
    if not isinstance(value, str):
        raise Invalid("caption must be text", field="caption")
    if len(value) > 4 * MAX_CAPTION:  # bound the work before normalising
        raise Invalid(f"caption must be at most {MAX_CAPTION} characters", field="caption")
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        return None
    if len(text) > MAX_CAPTION:
        raise Invalid(f"caption must be at most {MAX_CAPTION} characters", field="caption")
    if any(unicodedata.category(c) in _BAD_CATEGORIES for c in text):
        raise Invalid(
            "caption must be one line of printable text (no control or format characters)",
            field="caption",
        )
    return text


def luminance(colour: str) -> float:
    """WCAG 2 relative luminance of #RRGGBB, 0 (black) .. 1 (white)."""

    def linear(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = _rgb(colour)
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


def contrast_ratio(a: str, b: str) -> float:
    la, lb = luminance(a), luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def parse_options(params: Mapping[str, str], logo: bytes | None = None) -> QrOptions:
    """Options from query parameters; every bad value raises Invalid naming its parameter.

    Unknown parameters are ignored. Colours may omit the `#` (it must be sent as %23 in a URL).
    Sizes accept a decimal comma. When `dpi` is given, the PNG pixel size is checked here too.
    An empty upload (`logo=b""`) means no logo.
    """
    defaults = QrOptions()
    size_mm, dpi, quiet = defaults.size_mm, defaults.dpi, defaults.quiet
    ec, fg, bg = defaults.ec, defaults.fg, defaults.bg
    if "size_mm" in params:
        raw = params["size_mm"].strip()
        if not _DECIMAL.fullmatch(raw):
            raise Invalid(
                f"size_mm must be a number of millimetres between {MIN_SIZE_MM:g} and "
                f"{MAX_SIZE_MM:g}",
                field="size_mm",
            )
        size_mm = float(raw.replace(",", "."))
    if "dpi" in params:
        raw = params["dpi"].strip()
        if not _UINT.fullmatch(raw):
            raise Invalid(
                f"dpi must be a whole number between {MIN_DPI} and {MAX_DPI}", field="dpi"
            )
        dpi = int(raw)
        _check_png_side(size_mm, dpi)  # asking for a dpi means asking for a PNG
    if "ec" in params:
        ec = params["ec"].strip().upper()  # type: ignore[assignment]
        if ec not in _EC_CONSTANTS:
            raise Invalid("ec must be one of L, M, Q, H", field="ec")
    if "fg" in params:
        fg = _colour(params["fg"], "fg")
    if "bg" in params:
        bg = _colour(params["bg"], "bg")
    if "quiet" in params:
        raw = params["quiet"].strip()
        if not _UINT.fullmatch(raw):
            raise Invalid(
                f"quiet must be a whole number of modules between {MIN_QUIET} and {MAX_QUIET}",
                field="quiet",
            )
        quiet = int(raw)
    allow_inverted = False
    if "inverted" in params:
        raw = params["inverted"].strip().lower()
        if raw not in ("", "0", "1", "true", "false"):
            raise Invalid("inverted must be 1, true, 0 or false", field="inverted")
        allow_inverted = raw in ("1", "true")
    return QrOptions(
        size_mm=size_mm,
        dpi=dpi,
        ec=ec,
        fg=fg,
        bg=bg,
        quiet=quiet,
        caption=params.get("caption"),
        allow_inverted=allow_inverted,
        logo=logo or None,
    )


def _check_png_side(size_mm: float, dpi: int) -> int:
    px = round(size_mm / 25.4 * dpi)
    if px > MAX_PNG_PX:
        max_dpi = math.floor(MAX_PNG_PX * 25.4 / size_mm)
        max_mm = math.floor(MAX_PNG_PX * 25.4 / dpi)
        hint = f"at most {max_dpi} dpi for this size, or " if max_dpi >= MIN_DPI else ""
        raise Invalid(
            f"a PNG of {size_mm:g} mm at {dpi} dpi would be {px} px wide, too large: the maximum "
            f"is {MAX_PNG_PX} px ({hint}at most {max_mm} mm at {dpi} dpi); "
            "use SVG or PDF for larger prints",
            field="dpi",
        )
    return px


# --------------------------------------------------------------------------- logo


@functools.lru_cache(maxsize=4)
def _logo_image(logo: bytes) -> Image.Image:
    """Decode an uploaded logo (bounded in bytes, formats and pixels) to RGBA, at most
    LOGO_KEEP_SIDE px on a side (bounds the cache's memory); shared, so never mutate it."""
    if len(logo) > LOGO_MAX_BYTES:
        raise Invalid(f"logo must be at most {LOGO_MAX_BYTES // (1024 * 1024)} MB", field="logo")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(logo), formats=LOGO_FORMATS)
            w, h = opened.size  # from the header: checked before any pixel is decoded
            if w > LOGO_MAX_SIDE or h > LOGO_MAX_SIDE:
                raise Invalid(
                    f"logo is {w}x{h} px; at most {LOGO_MAX_SIDE}x{LOGO_MAX_SIDE} is accepted",
                    field="logo",
                )
            opened.load()
            im = ImageOps.exif_transpose(opened).convert("RGBA")
            if max(im.size) > LOGO_KEEP_SIDE:
                im.thumbnail((LOGO_KEEP_SIDE, LOGO_KEEP_SIDE), Image.Resampling.LANCZOS)
    except Invalid:
        raise
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise Invalid("logo must be a readable PNG, JPEG or WebP image", field="logo") from exc
    if im.width < 1 or im.height < 1:
        raise Invalid("logo must not be empty", field="logo")
    return im


def _logo_flat(logo: bytes, bg: str, max_side: int) -> Image.Image:
    """The logo over the background colour (RGB), shrunk to fit max_side (never enlarged)."""
    im = _logo_image(logo)
    if max(im.size) > max_side:
        im = im.copy()
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    flat = Image.new("RGBA", im.size, bg)
    flat.alpha_composite(im)
    return flat.convert("RGB")


@functools.lru_cache(maxsize=8)
def _logo_png_b64(logo: bytes) -> str:
    im = _logo_image(logo)
    if max(im.size) > LOGO_EMBED_SIDE:
        im = im.copy()
        im.thumbnail((LOGO_EMBED_SIDE, LOGO_EMBED_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


# --------------------------------------------------------------------------- encoding


@dataclass(frozen=True)
class Symbol:
    """An encoded QR symbol without quiet zone; `dark[y][x]`, with the logo pad already cleared."""

    version: int
    ec: str
    modes: tuple[str, ...]
    size: int
    dark: tuple[tuple[bool, ...], ...]
    runs: tuple[tuple[int, int, int], ...]  # (y, x, width) of dark horizontal runs, row-major
    raw: bytes  # size*size bytes, 1 = dark, 0 = light
    pad: tuple[int, int] | None  # (offset, side) of the cleared logo square, in modules


@functools.lru_cache(maxsize=1024)
def encode(data: str, ec: str = "M", logo: bool = False) -> Symbol:
    """Encode `data` (mode per segment chosen by `qrcode`; upper-case URLs use alphanumeric)."""
    if not isinstance(data, str) or not data:
        raise Invalid("data to encode must not be empty", field="data")
    if len(data) > MAX_DATA:
        raise Invalid(f"data to encode must be at most {MAX_DATA} characters", field="data")
    if ec not in _EC_CONSTANTS:
        raise Invalid("ec must be one of L, M, Q, H", field="ec")
    # A logo needs room: version 2 is the smallest whose centre clears the function patterns.
    qr = qrcode.QRCode(version=2 if logo else None, error_correction=_EC_CONSTANTS[ec], border=0)
    qr.add_data(data)
    try:
        qr.make(fit=True)
    except (qrcode.exceptions.DataOverflowError, ValueError) as exc:
        raise Invalid("data is too long for a QR code", field="data") from exc
    modules = [[bool(m) for m in row] for row in qr.modules]
    n = len(modules)
    pad = None
    if logo:
        side = _logo_pad_side(modules, qr.version, ec)  # type: ignore[arg-type]
        off = (n - side) // 2
        for y in range(off, off + side):
            modules[y][off : off + side] = [False] * side
        pad = (off, side)
    runs: list[tuple[int, int, int]] = []
    raw = bytearray()
    for y, row in enumerate(modules):
        bits = bytes(row)
        raw += bits
        x = bits.find(1)
        while x >= 0:
            end = bits.find(0, x)
            if end < 0:
                end = n
            runs.append((y, x, end - x))
            x = bits.find(1, end)
    return Symbol(
        version=qr.version,  # type: ignore[arg-type]
        ec=ec,
        modes=tuple(_MODE_NAMES.get(d.mode, str(d.mode)) for d in qr.data_list),
        size=n,
        dark=tuple(tuple(r) for r in modules),
        runs=tuple(runs),
        raw=bytes(raw),
        pad=pad,
    )


def function_modules(version: int) -> tuple[tuple[bool, ...], ...]:
    """True where a module is a function pattern (finder, separator, timing, alignment, format
    or version information), i.e. carries no data."""
    return _function_modules(version)


@functools.lru_cache(maxsize=40)
def _function_modules(version: int) -> tuple[tuple[bool, ...], ...]:
    n = 4 * version + 17
    f = [[False] * n for _ in range(n)]

    def mark(r0: int, c0: int, h: int, w: int) -> None:
        for r in range(max(r0, 0), min(r0 + h, n)):
            f[r][max(c0, 0) : min(c0 + w, n)] = [True] * (min(c0 + w, n) - max(c0, 0))

    mark(0, 0, 9, 9)  # finders with separators and format information (and the dark module)
    mark(0, n - 8, 9, 8)
    mark(n - 8, 0, 8, 9)
    mark(6, 0, 1, n)  # timing patterns
    mark(0, 6, n, 1)
    centres = qrcode.util.pattern_position(version)
    for r in centres:
        for c in centres:
            if (r < 9 and c < 9) or (r < 9 and c > n - 9) or (r > n - 9 and c < 9):
                continue  # would overlap a finder: not drawn
            mark(r - 2, c - 2, 5, 5)
    if version >= 7:  # version information
        mark(0, n - 11, 6, 3)
        mark(n - 11, 0, 3, 6)
    return tuple(tuple(row) for row in f)


@functools.lru_cache(maxsize=40)
def data_module_order(version: int) -> tuple[tuple[int, int], ...]:
    """(row, col) of every data module in placement order: bit i belongs to codeword i // 8."""
    f = _function_modules(version)
    n = len(f)
    order: list[tuple[int, int]] = []
    row, step = n - 1, -1
    for right in range(n - 1, 0, -2):
        col = right - 1 if right <= 6 else right  # skip the vertical timing column
        while 0 <= row < n:
            for c in (col, col - 1):
                if not f[row][c]:
                    order.append((row, c))
            row += step
        row -= step
        step = -step
    return tuple(order)


@functools.lru_cache(maxsize=160)
def codeword_blocks(version: int, ec: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(block index of each codeword in placement order, correctable codewords per block)."""
    blocks = qrcode.base.rs_blocks(version, _EC_CONSTANTS[ec])
    data_counts = [b.data_count for b in blocks]
    ec_counts = [b.total_count - b.data_count for b in blocks]
    owner: list[int] = []
    for counts in (data_counts, ec_counts):  # data codewords interleaved, then EC codewords
        for i in range(max(counts)):
            owner.extend(j for j, count in enumerate(counts) if i < count)
    return tuple(owner), tuple(c // 2 for c in ec_counts)


def _logo_pad_side(dark: list[list[bool]], version: int, ec: str) -> int:
    """Side of the centred logo pad for this symbol (see LOGO_EC_BUDGET), odd like the symbol."""
    n = len(dark)
    mid = n // 2
    owner, correctable = codeword_blocks(version, ec)
    # Smallest centred square that touches a dark module of each codeword.
    touch = [n + 2] * len(owner)
    for i, (r, c) in enumerate(data_module_order(version)[: 8 * len(owner)]):
        if dark[r][c]:
            side = 2 * max(abs(r - mid), abs(c - mid)) + 1
            if side < touch[i >> 3]:
                touch[i >> 3] = side
    limit = min(math.isqrt(int(LOGO_MAX_AREA * n * n)), n - 18)
    per_block: list[list[int]] = [[] for _ in correctable]
    for i, side in enumerate(touch):
        per_block[owner[i]].append(side)
    for block, sides in enumerate(per_block):
        allowed = int(LOGO_EC_BUDGET * correctable[block])
        if allowed < len(sides):
            sides.sort()
            limit = min(limit, sides[allowed] - 2)  # the next broken codeword stays outside
    if (n - limit) % 2:
        limit -= 1
    return max(limit, 0)


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Layout:
    symbol: Symbol
    quiet: int
    modules: int  # modules across incl. quiet zone
    size_mm: float
    band_mm: float  # caption band height, 0 without caption
    font_mm: float
    caption: str | None

    @property
    def height_mm(self) -> float:
        return self.size_mm + self.band_mm

    @property
    def baseline_mm(self) -> float:
        """Caption baseline, from the top: caps centred in the band (cap height ~0.72 em)."""
        return self.size_mm + self.band_mm * 0.42 + 0.36 * self.font_mm

    def logo_box(self) -> tuple[float, float] | None:
        """(offset, side) of the logo inside its pad, in modules from the image's top left."""
        if self.symbol.pad is None:
            return None
        off, side = self.symbol.pad
        inset = 0.5 if side >= 5 else 0.25
        return self.quiet + off + inset, side - 2 * inset


def _layout(data: str, options: QrOptions) -> _Layout:
    symbol = encode(data, options.ec, options.logo is not None)
    band = font = 0.0
    if options.caption:
        band = options.size_mm * CAPTION_BAND
        font = options.size_mm * min(
            CAPTION_FONT, CAPTION_MAX_WIDTH / _helvetica_width_em(options.caption)
        )
    return _Layout(
        symbol=symbol,
        quiet=options.quiet,
        modules=symbol.size + 2 * options.quiet,
        size_mm=options.size_mm,
        band_mm=band,
        font_mm=font,
        caption=options.caption,
    )


# Helvetica advance widths (1/1000 em) for ASCII 32..126, from the Adobe core font metrics.
_HELVETICA_ASCII = (
    "278 278 355 556 556 889 667 191 333 333 389 584 278 333 278 278 556 556 556 556 556 556 556 "
    "556 556 556 278 278 584 584 584 556 1015 667 667 722 722 667 611 778 722 278 500 667 556 833 "
    "722 778 667 778 722 667 611 722 667 944 667 667 611 278 278 278 469 556 333 556 556 500 556 "
    "556 278 556 556 222 222 500 222 833 556 556 556 556 333 500 278 556 500 722 500 500 500 334 "
    "260 334 584"
)
_HELVETICA = {chr(32 + i): int(w) for i, w in enumerate(_HELVETICA_ASCII.split())}


def _helvetica_width_em(text: str) -> float:
    """Width in em: exact for ASCII, the base letter for accented Latin, 0.6 em otherwise."""
    total = 0
    for c in text:
        w = _HELVETICA.get(c)
        if w is None:
            base = unicodedata.normalize("NFD", c)[0]
            w = _HELVETICA.get(base, 600)
        total += w
    return max(total / 1000, 0.001)


def _num(x: float) -> str:
    s = f"{x:.4f}".rstrip("0").rstrip(".")
    return "0" if s in ("", "-0") else s


# --------------------------------------------------------------------------- SVG


def _svg_path(symbol: Symbol, quiet: int) -> str:
    """One path of merged horizontal runs, each `h w v1 h-w z`, moving relative between runs."""
    if not symbol.runs:
        return ""
    y0, x0, w0 = symbol.runs[0]
    parts = [f"M{x0 + quiet} {y0 + quiet}h{w0}v1h-{w0}z"]
    px, py = x0, y0  # after `z` the current point is back at the run's start
    for y, x, w in symbol.runs[1:]:
        parts.append(f"m{x - px} {y - py}h{w}v1h-{w}z")
        px, py = x, y
    return "".join(parts)


def _xml_escape(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
    )


def render_svg(data: str, options: QrOptions) -> bytes:
    lay = _layout(data, options)
    n = lay.modules
    unit = lay.size_mm / n  # mm per module
    height = n + lay.band_mm / unit
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'version="1.1" width="{_num(lay.size_mm)}mm" height="{_num(lay.height_mm)}mm" '
        f'viewBox="0 0 {n} {_num(height)}">',
        f'<rect width="{n}" height="{_num(height)}" fill="{options.bg}"/>',
        f'<path fill="{options.fg}" d="{_svg_path(lay.symbol, lay.quiet)}"/>',
    ]
    box = lay.logo_box()
    if box is not None and options.logo is not None:
        off, side = box
        out.append(
            f'<image x="{_num(off)}" y="{_num(off)}" width="{_num(side)}" height="{_num(side)}" '
            'preserveAspectRatio="xMidYMid meet" '
            f'xlink:href="data:image/png;base64,{_logo_png_b64(options.logo)}"/>'
        )
    if lay.caption:
        out.append(
            f'<text x="{_num(n / 2)}" y="{_num(lay.baseline_mm / unit)}" '
            f'font-family="{_SVG_FONT}" font-size="{_num(lay.font_mm / unit)}" '
            f'text-anchor="middle" fill="{options.fg}">{_xml_escape(lay.caption)}</text>'
        )
    out.append("</svg>\n")
    return "".join(out).encode("utf-8")


# --------------------------------------------------------------------------- PNG


_FONT_LOCK = threading.Lock()


@functools.lru_cache(maxsize=64)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in _FONT_FILES:
        if os.path.exists(path):
            return ImageFont.truetype(path, px)
    return ImageFont.load_default(size=px)


def _fitted_font(text: str, px: float, max_width: float) -> ImageFont.FreeTypeFont:
    size = max(int(px), 1)
    font = _font(size)
    width = font.getlength(text)
    if width > max_width and size > 1:
        font = _font(max(int(size * max_width / width), 1))
    return font  # type: ignore[return-value]


def _caption_mask(
    text: str, width: int, height: int, baseline: float, font_px: float
) -> Image.Image:
    """The caption as an "L" image: 255 where background, 0 where full ink."""
    band = Image.new("L", (width, height), 255)
    with _FONT_LOCK:  # cached FreeType faces are shared between threads
        font = _fitted_font(text, font_px, width * CAPTION_MAX_WIDTH)
        ImageDraw.Draw(band).text((width / 2, baseline), text, fill=0, font=font, anchor="ms")
    return band


# Palette indices in the PNG: 0 = bg, 1 = fg, 2..15 = anti-aliasing steps from bg to fg for the
# caption, 16.. = the logo's own colours. A plain code only uses two entries (a 1-bit PNG).
_RAMP = 15


def _ink_lut() -> list[int]:
    lut = []
    for v in range(256):
        r = round((255 - v) / 255 * _RAMP)
        lut.append(0 if r == 0 else 1 if r == _RAMP else 1 + r)
    return lut


_INK_LUT = _ink_lut()


def render_png(data: str, options: QrOptions) -> bytes:
    lay = _layout(data, options)
    side = _check_png_side(options.size_mm, options.dpi)
    n = lay.modules
    if side < MIN_PX_PER_MODULE * n:
        raise Invalid(
            f"{side} px is too small for this code: {n} modules need at least "
            f"{MIN_PX_PER_MODULE * n} px; raise dpi or size_mm",
            field="dpi",
        )
    sym = lay.symbol
    # One pixel per module (values are palette indices), then exact size with nearest-neighbour:
    # modules stay crisp, and differ by at most one pixel when the scale is not a whole number.
    small = Image.new("L", (n, n), 0)
    small.paste(Image.frombytes("L", (sym.size, sym.size), sym.raw), (lay.quiet, lay.quiet))
    code = small.resize((side, side), Image.Resampling.NEAREST)
    band_px = round(lay.band_mm / 25.4 * options.dpi)
    canvas = code
    if band_px:
        canvas = Image.new("L", (side, side + band_px), 0)
        canvas.paste(code, (0, 0))
    palette = [*_rgb(options.bg), *_rgb(options.fg)]
    if lay.caption and band_px:
        px_per_mm = options.dpi / 25.4
        mask = _caption_mask(
            lay.caption,
            side,
            band_px,
            (lay.baseline_mm - lay.size_mm) * px_per_mm,
            lay.font_mm * px_per_mm,
        )
        canvas.paste(mask.point(_INK_LUT), (0, side))
    box = lay.logo_box()
    if (box is not None and options.logo is not None) or lay.caption:
        fg, bg = _rgb(options.fg), _rgb(options.bg)
        for r in range(1, _RAMP):
            t = r / _RAMP
            palette += [round(b + (f - b) * t) for f, b in zip(fg, bg, strict=True)]
    if box is not None and options.logo is not None:
        scale = side / n
        x0 = round(box[0] * scale)
        box_px = round((box[0] + box[1]) * scale) - x0
        logo = _logo_flat(options.logo, options.bg, box_px)
        if max(logo.size) < box_px:
            w, h = logo.size
            k = box_px / max(w, h)
            logo = logo.resize(
                (max(round(w * k), 1), max(round(h * k), 1)), Image.Resampling.LANCZOS
            )
        quant = logo.quantize(colors=256 - 16 - 1, method=Image.Quantize.MEDIANCUT)
        lpal = quant.getpalette() or []
        extrema = quant.getextrema()
        used = int(extrema[1]) + 1  # type: ignore[arg-type]
        indices = Image.frombytes("L", quant.size, quant.tobytes()).point(
            [min(i + 16, 255) for i in range(256)]
        )
        palette += lpal[: 3 * used]
        canvas.paste(indices, (x0 + (box_px - logo.width) // 2, x0 + (box_px - logo.height) // 2))
    canvas.putpalette(palette)
    buf = io.BytesIO()
    canvas.save(buf, "PNG", dpi=(options.dpi, options.dpi))
    return buf.getvalue()


# --------------------------------------------------------------------------- PDF


def _pdf_colour(colour: str, stroke: bool = False) -> str:
    if colour == "#000000":  # pure K black: no four-colour registration fringes on fine modules
        return "0 0 0 1 K" if stroke else "0 0 0 1 k"
    r, g, b = _rgb(colour)
    op = "RG" if stroke else "rg"
    return f"{_num(r / 255)} {_num(g / 255)} {_num(b / 255)} {op}"


def _pdf_string(text: str) -> bytes | None:
    """A PDF literal string in WinAnsiEncoding, or None when the text is outside it."""
    try:
        raw = text.encode("cp1252")
    except UnicodeEncodeError:
        return None
    out = bytearray(b"(")
    for byte in raw:
        if byte in b"()\\":
            out += b"\\" + bytes([byte])
        elif 32 <= byte < 127:
            out.append(byte)
        else:
            out += b"\\%03o" % byte
    out += b")"
    return bytes(out)


class _Pdf:
    """Just enough of a PDF writer: numbered objects, streams, xref table, trailer."""

    def __init__(self) -> None:
        self.objects: list[bytes] = []

    def reserve(self) -> int:
        self.objects.append(b"")
        return len(self.objects)

    def set(self, num: int, body: bytes) -> int:
        self.objects[num - 1] = body
        return num

    def add(self, body: bytes) -> int:
        return self.set(self.reserve(), body)

    def stream(self, entries: bytes, data: bytes) -> int:
        return self.add(
            b"<< " + entries + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"
        )

    def finish(self, root: int) -> bytes:
        out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for i, body in enumerate(self.objects, start=1):
            offsets.append(len(out))
            out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(self.objects) + 1)
        for off in offsets:
            out += b"%010d 00000 n \n" % off
        out += b"trailer\n<< /Size %d /Root %d 0 R >>\n" % (len(self.objects) + 1, root)
        out += b"startxref\n%d\n%%%%EOF\n" % xref
        return bytes(out)


def render_pdf(data: str, options: QrOptions) -> bytes:
    lay = _layout(data, options)
    n = lay.modules
    pt = 72 / 25.4  # points per mm
    width, height = lay.size_mm * pt, lay.height_mm * pt
    unit = width / n  # points per module
    pdf = _Pdf()
    catalog, pages, page = pdf.reserve(), pdf.reserve(), pdf.reserve()
    resources: list[bytes] = []
    ops = [
        f"{_pdf_colour(options.bg)} 0 0 {_num(width)} {_num(height)} re f",
        # Module coordinates: origin at the top left, y down, one unit per module.
        f"q {_num(unit)} 0 0 {_num(-unit)} 0 {_num(height)} cm {_pdf_colour(options.fg)}",
    ]
    q = lay.quiet
    ops.extend(f"{x + q} {y + q} {w} 1 re" for y, x, w in lay.symbol.runs)
    ops.append("f Q")
    box = lay.logo_box()
    if box is not None and options.logo is not None:
        logo = _logo_flat(options.logo, options.bg, LOGO_EMBED_SIDE)
        img = pdf.stream(
            b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
            b"/BitsPerComponent 8 /Interpolate true /Filter /FlateDecode"
            % (logo.width, logo.height),
            zlib.compress(logo.tobytes(), 6),
        )
        resources.append(b"/Logo %d 0 R" % img)
        off, side = box
        k = side / max(logo.size)
        w, h = logo.width * k, logo.height * k
        x, y = off + (side - w) / 2, off + (side - h) / 2
        ops.append(
            f"q {_num(w * unit)} 0 0 {_num(h * unit)} {_num(x * unit)} "
            f"{_num(height - (y + h) * unit)} cm /Logo Do Q"
        )
    font_res = b""
    if lay.caption:
        baseline = height - lay.baseline_mm * pt
        font_pt = lay.font_mm * pt
        literal = _pdf_string(lay.caption)
        if literal is not None:
            font = pdf.add(
                b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            )
            font_res = b"/Font << /F1 %d 0 R >>" % font
            text_w = _helvetica_width_em(lay.caption) * font_pt
            ops.append(
                f"BT {_pdf_colour(options.fg)} /F1 {_num(font_pt)} Tf "
                f"{_num((width - text_w) / 2)} {_num(baseline)} Td "
                + literal.decode("ascii")
                + " Tj ET"
            )
        else:
            # Outside WinAnsi (Cyrillic, Greek, CJK...): a 1-bit stencil of the text painted in fg,
            # drawn at 600 dpi but at most 8000 px wide.
            band_h = lay.band_mm * pt
            dpi = min(600.0, 8000 / (lay.size_mm / 25.4))
            px_per_mm = dpi / 25.4
            w_px = max(round(lay.size_mm * px_per_mm), 1)
            h_px = max(round(lay.band_mm * px_per_mm), 1)
            mask = _caption_mask(
                lay.caption,
                w_px,
                h_px,
                (lay.baseline_mm - lay.size_mm) * px_per_mm,
                lay.font_mm * px_per_mm,
            ).point(lambda v: 255 if v >= 128 else 0, mode="1")
            stencil = pdf.stream(
                b"/Type /XObject /Subtype /Image /Width %d /Height %d /ImageMask true "
                b"/BitsPerComponent 1 /Filter /FlateDecode" % (w_px, h_px),
                zlib.compress(mask.tobytes(), 6),
            )
            resources.append(b"/Caption %d 0 R" % stencil)
            ops.append(
                f"q {_pdf_colour(options.fg)} {_num(width)} 0 0 {_num(band_h)} 0 0 cm /Caption Do Q"
            )
    content = pdf.stream(b"/Filter /FlateDecode", zlib.compress("\n".join(ops).encode(), 6))
    xobjects = b"/XObject << " + b" ".join(resources) + b" >>" if resources else b""
    box_pt = b"[0 0 %s %s]" % (_num(width).encode(), _num(height).encode())
    pdf.set(catalog, b"<< /Type /Catalog /Pages %d 0 R >>" % pages)
    pdf.set(pages, b"<< /Type /Pages /Kids [%d 0 R] /Count 1 >>" % page)
    pdf.set(
        page,
        b"<< /Type /Page /Parent %d 0 R /MediaBox %s /TrimBox %s "
        b"/Resources << %s %s >> /Contents %d 0 R >>"
        % (pages, box_pt, box_pt, font_res, xobjects, content),
    )
    return pdf.finish(catalog)


# --------------------------------------------------------------------------- dispatch, cache


_RENDERERS: dict[str, Callable[[str, QrOptions], bytes]] = {
    "svg": render_svg,
    "png": render_png,
    "pdf": render_pdf,
}


def render(data: str, fmt: Format, options: QrOptions) -> bytes:
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        raise Invalid("format must be svg, png or pdf", field="format")
    return renderer(data, options)


def etag(data: str, fmt: str, options: QrOptions) -> str:
    """Strong ETag: a hash of everything that shapes the file (dpi only for PNG)."""
    logo = hashlib.sha256(options.logo).hexdigest() if options.logo is not None else "-"
    key = "\x1f".join(
        [
            RENDERER_VERSION,
            data,
            fmt,
            repr(options.size_mm),
            str(options.dpi) if fmt == "png" else "-",
            options.ec,
            options.fg,
            options.bg,
            str(options.quiet),
            options.caption if options.caption is not None else "\x00",
            logo,
        ]
    )
    return '"' + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32] + '"'


class CacheInfo(NamedTuple):
    hits: int
    misses: int
    maxsize: int
    currsize: int
    bytes: int
    maxbytes: int


class _RenderCache:
    """LRU of rendered files bounded by entries *and* bytes (a 12000 px PNG can be megabytes)."""

    def __init__(self, maxsize: int = 256, maxbytes: int = 64 * 1024 * 1024) -> None:
        self.maxsize, self.maxbytes = maxsize, maxbytes
        self._items: OrderedDict[tuple[str, str, QrOptions], bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._bytes = self.hits = self.misses = 0

    def get(self, data: str, fmt: Format, options: QrOptions) -> bytes:
        key = (data, fmt, options)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        body = render(data, fmt, options)
        if len(body) > self.maxbytes // 4:
            return body
        with self._lock:
            if key not in self._items:
                self._items[key] = body
                self._bytes += len(body)
                while len(self._items) > self.maxsize or self._bytes > self.maxbytes:
                    _, old = self._items.popitem(last=False)
                    self._bytes -= len(old)
        return body

    def info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(
                self.hits, self.misses, self.maxsize, len(self._items), self._bytes, self.maxbytes
            )

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = self.hits = self.misses = 0


_CACHE = _RenderCache()


def render_cached(data: str, fmt: Format, options: QrOptions) -> bytes:
    """`render`, remembered per (data, fmt, options) in a bounded LRU shared by the process."""
    return _CACHE.get(data, fmt, options)


def render_cache_info() -> CacheInfo:
    return _CACHE.info()


def render_cache_clear() -> None:
    _CACHE.clear()
