"""Encoding: data to a QR symbol (version, error correction, modes, dark modules and their runs),
the codeword layout of each version, and the size of the logo pad a symbol can afford."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import qrcode
import qrcode.base
import qrcode.constants
import qrcode.exceptions
import qrcode.util

from acquisition.errors import Invalid

MAX_DATA = 2048

# A logo forces level H. The bg-coloured pad under it is a centred square of whole modules, clear
# of finder patterns, separators, format and version info, at most LOGO_MAX_AREA of the symbol,
# and sized per symbol so that in every Reed-Solomon block the codewords it breaks (those with a
# dark module under the pad) use at most LOGO_EC_BUDGET of what the block can correct: the rest
# is left for dirt, blur and glare. (Covering a share of the *area* is not enough: at version 13
# a pad of 11 % of the area already breaks more codewords in one block than H can correct.)
LOGO_MAX_AREA = 0.20
LOGO_EC_BUDGET = 2 / 3

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
        side = _logo_pad_side(modules, qr.version, ec)
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
        version=qr.version,
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
