"""Where things go on the page: modules across with the quiet zone, the caption band, font size
and baseline (from Helvetica widths), the logo box; and how SVG and PDF write the numbers."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from acquisition.qr.options import QrOptions
from acquisition.qr.symbol import Symbol, encode

# Caption band under the code, as shares of the code's side.
CAPTION_BAND = 0.11
CAPTION_FONT = 0.06
CAPTION_MAX_WIDTH = 0.92


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
