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

from acquisition.qr.cache import (
    MEDIA_TYPES,
    RENDERER_VERSION,
    CacheInfo,
    Format,
    etag,
    render,
    render_cache_clear,
    render_cache_info,
    render_cached,
)
from acquisition.qr.layout import CAPTION_BAND, CAPTION_FONT, CAPTION_MAX_WIDTH
from acquisition.qr.logo import (
    LOGO_EMBED_SIDE,
    LOGO_FORMATS,
    LOGO_KEEP_SIDE,
    LOGO_MAX_BYTES,
    LOGO_MAX_SIDE,
)
from acquisition.qr.options import (
    MAX_CAPTION,
    MAX_DPI,
    MAX_PNG_PX,
    MAX_QUIET,
    MAX_SIZE_MM,
    MIN_CONTRAST,
    MIN_DPI,
    MIN_QUIET,
    MIN_SIZE_MM,
    EcLevel,
    QrOptions,
    contrast_ratio,
    luminance,
    parse_options,
)
from acquisition.qr.pdf import render_pdf
from acquisition.qr.png import MIN_PX_PER_MODULE, render_png
from acquisition.qr.svg import render_svg
from acquisition.qr.symbol import (
    LOGO_EC_BUDGET,
    LOGO_MAX_AREA,
    MAX_DATA,
    Symbol,
    codeword_blocks,
    data_module_order,
    encode,
    function_modules,
)

__all__ = [
    "CAPTION_BAND",
    "CAPTION_FONT",
    "CAPTION_MAX_WIDTH",
    "LOGO_EC_BUDGET",
    "LOGO_EMBED_SIDE",
    "LOGO_FORMATS",
    "LOGO_KEEP_SIDE",
    "LOGO_MAX_AREA",
    "LOGO_MAX_BYTES",
    "LOGO_MAX_SIDE",
    "MAX_CAPTION",
    "MAX_DATA",
    "MAX_DPI",
    "MAX_PNG_PX",
    "MAX_QUIET",
    "MAX_SIZE_MM",
    "MEDIA_TYPES",
    "MIN_CONTRAST",
    "MIN_DPI",
    "MIN_PX_PER_MODULE",
    "MIN_QUIET",
    "MIN_SIZE_MM",
    "RENDERER_VERSION",
    "CacheInfo",
    "EcLevel",
    "Format",
    "QrOptions",
    "Symbol",
    "codeword_blocks",
    "contrast_ratio",
    "data_module_order",
    "encode",
    "etag",
    "function_modules",
    "luminance",
    "parse_options",
    "render",
    "render_cache_clear",
    "render_cache_info",
    "render_cached",
    "render_pdf",
    "render_png",
    "render_svg",
]
