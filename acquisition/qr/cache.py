"""Rendering by format, the strong ETag of a rendering, and a process-wide LRU of finished files
bounded by entries and bytes."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal, NamedTuple

from acquisition.errors import Invalid
from acquisition.qr.options import QrOptions
from acquisition.qr.pdf import render_pdf
from acquisition.qr.png import render_png
from acquisition.qr.svg import render_svg

Format = Literal["svg", "png", "pdf"]

MEDIA_TYPES: dict[str, str] = {"svg": "image/svg+xml", "png": "image/png", "pdf": "application/pdf"}

# Bumped whenever the drawing changes, so ETags and caches of older renderings go stale.
RENDERER_VERSION = "qr-1"


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
