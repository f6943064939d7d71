"""The uploaded logo: decoded once within bounds (bytes, formats, pixels), then flattened over
the background for PNG and PDF or embedded as a base64 PNG in SVG."""

from __future__ import annotations

import base64
import functools
import io
import warnings

from PIL import Image, ImageOps

from acquisition.errors import Invalid

LOGO_MAX_BYTES = 2 * 1024 * 1024
LOGO_MAX_SIDE = 4000
LOGO_FORMATS = ("PNG", "JPEG", "WEBP")
LOGO_EMBED_SIDE = 1024  # SVG/PDF embed the logo at most this many pixels on a side
LOGO_KEEP_SIDE = 2048  # decoded logos are kept this large at most (43 mm at 1200 dpi)


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
