"""QR rendering throughput: `.venv/bin/python tests/bench/qr_bench.py` (not a pytest module).

Every timed call gets a URL never rendered before, so neither `encode`'s cache nor
`render_cached` flatters the numbers; the cache is measured apart, on a request mix.
"""

from __future__ import annotations

import io
import itertools
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import qrcode
import qrcode.image.svg

from acquisition import qr

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def urls() -> Iterator[str]:
    """Distinct upper-case short URLs like the service prints."""
    for n in itertools.count(1_000_000):
        code = ""
        for _ in range(6):
            n, r = divmod(n, 32)
            code += CROCKFORD[r]
        yield f"HTTPS://GO.EXAMPLE.COM/{code}"


URLS = urls()
FLYER = qr.QrOptions(size_mm=50, dpi=300)
BILLBOARD = qr.QrOptions(size_mm=1500, dpi=72)


def measure(count: int, fn: Callable[[str], bytes]) -> tuple[float, float]:
    """(codes per second, mean output bytes) over `count` fresh URLs."""
    batch = [next(URLS) for _ in range(count)]
    size = 0
    start = time.perf_counter()
    for url in batch:
        size += len(fn(url))
    elapsed = time.perf_counter() - start
    return count / elapsed, size / count


def qrcode_svg(url: str) -> bytes:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    code.add_data(url)
    return code.make_image(image_factory=qrcode.image.svg.SvgPathImage).to_string()


def qrcode_png(url: str) -> bytes:
    """qrcode's own PIL output at the nearest whole box size to the flyer (591 px)."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4, box_size=18)
    code.add_data(url)
    buf = io.BytesIO()
    code.make_image().save(buf)
    return buf.getvalue()


def drawing_only(count: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """SVG drawing alone, symbols already encoded: our path builder vs qrcode's factory."""
    batch = [next(URLS) for _ in range(count)]
    made = []
    for url in batch:
        qr.encode(url, "M", False)  # the exact key render_svg uses
        code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
        code.add_data(url)
        code.make()
        made.append(code)
    options = qr.QrOptions()
    start = time.perf_counter()
    ours = sum(len(qr.render_svg(url, options)) for url in batch)
    ours_rate = count / (time.perf_counter() - start)
    start = time.perf_counter()
    theirs = sum(
        len(code.make_image(image_factory=qrcode.image.svg.SvgPathImage).to_string())
        for code in made
    )
    theirs_rate = count / (time.perf_counter() - start)
    return (ours_rate, ours / count), (theirs_rate, theirs / count)


def batch_seconds(count: int, fmt: qr.Format, options: qr.QrOptions) -> float:
    batch = [next(URLS) for _ in range(count)]
    start = time.perf_counter()
    for url in batch:
        qr.render(url, fmt, options)
    return time.perf_counter() - start


def cache_mix(requests: int, links: int) -> tuple[float, float, float]:
    """A request mix over `links` codes in two formats: (hit rate, µs per request cached,
    µs per request uncached)."""
    qr.render_cache_clear()
    pool = [next(URLS) for _ in range(links)]
    rng = random.Random(7)
    mix = [(rng.choice(pool), rng.choice(["svg", "png"])) for _ in range(requests)]
    start = time.perf_counter()
    for url, fmt in mix:
        qr.render_cached(url, fmt, FLYER)  # type: ignore[arg-type]
    cached = time.perf_counter() - start
    info = qr.render_cache_info()
    qr.encode.cache_clear()
    start = time.perf_counter()
    for url, fmt in mix:
        qr.encode.cache_clear()  # as if nothing were cached at all
        qr.render(url, fmt, FLYER)  # type: ignore[arg-type]
    uncached = time.perf_counter() - start
    qr.render_cache_clear()
    return info.hits / (info.hits + info.misses), cached / requests * 1e6, uncached / requests * 1e6


def main() -> None:
    qr.render_svg(next(URLS), FLYER)  # warm imports and fonts
    qr.render_png(next(URLS), qr.QrOptions(caption="warm"))
    rows: list[tuple[str, float, float]] = []
    rows.append(
        ("SVG, ours (one path of merged runs)", *measure(400, lambda u: qr.render_svg(u, FLYER)))
    )
    rows.append(("SVG, qrcode SvgPathImage factory", *measure(400, qrcode_svg)))
    (ours, ours_size), (theirs, theirs_size) = drawing_only(400)
    rows.append(("SVG drawing only (pre-encoded), ours", ours, ours_size))
    rows.append(("SVG drawing only (pre-encoded), qrcode", theirs, theirs_size))
    rows.append(
        ("PNG flyer 50 mm @ 300 dpi (591 px)", *measure(200, lambda u: qr.render_png(u, FLYER)))
    )
    rows.append(("PNG flyer, qrcode PIL box_size 18 (594 px)", *measure(200, qrcode_png)))
    caption = qr.QrOptions(size_mm=50, dpi=300, caption="Scan to subscribe in Telegram")
    rows.append(("PNG flyer + caption", *measure(200, lambda u: qr.render_png(u, caption))))
    rows.append(
        (
            "PNG billboard 1500 mm @ 72 dpi (4252 px)",
            *measure(50, lambda u: qr.render_png(u, BILLBOARD)),
        )
    )
    board = qr.QrOptions(size_mm=1500, dpi=72, caption="Scan to subscribe in Telegram")
    rows.append(("PNG billboard + caption", *measure(30, lambda u: qr.render_png(u, board))))
    rows.append(("PDF 50 mm", *measure(400, lambda u: qr.render_pdf(u, FLYER))))
    rows.append(("PDF 50 mm + caption", *measure(400, lambda u: qr.render_pdf(u, caption))))

    print(f"{'render (distinct URLs)':<46} {'codes/s':>9} {'bytes':>9}")
    for name, rate, size in rows:
        print(f"{name:<46} {rate:>9.0f} {size:>9.0f}")
    print()
    print(f"{'batch of 200 distinct URLs':<46} {'seconds':>9}")
    print(f"{'SVG':<46} {batch_seconds(200, 'svg', FLYER):>9.3f}")
    print(f"{'PNG flyer':<46} {batch_seconds(200, 'png', FLYER):>9.3f}")
    print()
    hit_rate, cached_us, uncached_us = cache_mix(2000, 100)
    print("render_cached, 2000 requests over 100 codes x {svg, png flyer}:")
    print(
        f"  hit rate {hit_rate:.1%}, {cached_us:.0f} µs/request cached vs "
        f"{uncached_us:.0f} µs/request rendering every time"
    )


if __name__ == "__main__":
    main()
