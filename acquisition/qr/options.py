"""How to draw a code: QrOptions and parse_options (sizes, DPI, error correction, colours and
their contrast, caption text, logo), each bad value an Invalid naming its query parameter."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from acquisition.errors import Invalid
from acquisition.qr.logo import _logo_image
from acquisition.qr.symbol import _EC_CONSTANTS

EcLevel = Literal["L", "M", "Q", "H"]

MIN_SIZE_MM, MAX_SIZE_MM = 10.0, 5000.0
MIN_DPI, MAX_DPI = 72, 1200
MAX_PNG_PX = 12_000
MIN_QUIET, MAX_QUIET = 4, 20
MAX_CAPTION = 80

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

_COLOUR = re.compile(r"#?([0-9A-Fa-f]{6})")
_UINT = re.compile(r"[0-9]{1,6}")
_DECIMAL = re.compile(r"[0-9]{1,6}(?:[.,][0-9]{1,6})?")
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


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
