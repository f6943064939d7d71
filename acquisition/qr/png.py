"""PNG at an exact pixel size and DPI: a palette image scaled with nearest-neighbour, the caption
drawn with FreeType (its mask is also the PDF's stencil for text outside WinAnsi)."""

from __future__ import annotations

import functools
import io
import os
import threading

from PIL import Image, ImageDraw, ImageFont

from acquisition.errors import Invalid
from acquisition.qr.layout import CAPTION_MAX_WIDTH, _layout
from acquisition.qr.logo import _logo_flat
from acquisition.qr.options import QrOptions, _check_png_side, _rgb

MIN_PX_PER_MODULE = 2  # below this nearest-neighbour modules vary by 50 % or more: unreadable

_FONT_FILES = (
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",  # Helvetica metrics
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)


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
