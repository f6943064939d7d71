"""The ZIP a print shop gets for a batch: one file per code, named after its placement, and
`manifest.csv` saying which file goes where, written and handed over one code at a time."""

from __future__ import annotations

import csv
import io
import unicodedata
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from acquisition import links, qr

MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = (
    "placement",
    "kind",
    "address",
    "cost",
    "code",
    "short_url",
    "qr_url",
    "file",
    "created",
)
# Already-compressed formats are stored as they are; text deflates well.
_COMPRESSION = {
    "svg": zipfile.ZIP_DEFLATED,
    "png": zipfile.ZIP_STORED,
    "pdf": zipfile.ZIP_STORED,
}


@dataclass(frozen=True)
class Item:
    """One code of the batch: the link and the placement it was made for."""

    code: str
    placement: str | None
    kind: str | None
    address: str | None
    cost: Decimal | None
    created: bool


# Russian and Ukrainian letters in a common Latin spelling ("Тверская" -> "tverskaya").
_LATIN = "a b v g d e e zh z i y k l m n o p r s t u f kh ts ch sh shch - y - e yu ya i yi ye g"
_CYRILLIC = dict(zip("абвгдеёжзийклмнопрстуфхцчшщъыьэюяіїєґ", _LATIN.split(" "), strict=True))


def slug(text: str | None, max_length: int = 40) -> str:
    """Safe ASCII for a file name: lower case, Cyrillic transliterated, other marks dropped."""
    if not text:
        return ""
    out = []
    for char in text.lower():
        latin = _CYRILLIC.get(char)
        if latin is not None:
            out.append("" if latin == "-" else latin)
            continue
        base = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
        out.append(base if base.isalnum() else "-")
    words = [w for w in "".join(out).split("-") if w]
    result = ""
    for word in words:
        candidate = f"{result}-{word}" if result else word
        if len(candidate) > max_length:
            break
        result = candidate
    return result or ("-".join(words)[:max_length].strip("-"))


def file_names(items: Sequence[Item], fmt: str) -> list[str]:
    """`001-billboard-tverskaya-12-K7Q2XP9.png`: numbered in request order, so names sort."""
    width = max(3, len(str(len(items))))
    names = []
    for number, item in enumerate(items, start=1):
        parts = [f"{number:0{width}d}", slug(item.placement), item.code]
        names.append("-".join(p for p in parts if p) + f".{fmt}")
    return names


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: a leading = + - @ tab or CR would start a formula."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def manifest(items: Sequence[Item], names: Sequence[str], base_url: str) -> bytes:
    """UTF-8 with a byte-order mark, so that spreadsheets read Cyrillic addresses right."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(MANIFEST_COLUMNS)
    for item, name in zip(items, names, strict=True):
        row = (
            item.placement,
            item.kind,
            item.address,
            item.cost,
            item.code,
            links.short_url(base_url, item.code),
            links.qr_url(base_url, item.code),
            name,
            "yes" if item.created else "no",
        )
        writer.writerow([_cell(value) for value in row])
    return buf.getvalue().encode("utf-8-sig")


class _Pipe:
    """A write-only stream that hands over what was written since last asked (no seek, no
    tell: zipfile then writes each member's sizes after its data)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def zip_stream(
    items: Sequence[Item],
    fmt: qr.Format,
    options: qr.QrOptions,
    base_url: str,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[bytes]:
    """The ZIP, yielded as it is written: one code is rendered, compressed and handed over before
    the next one starts, so memory holds one file whatever the batch size.

    `qr.render`, not `render_cached`: each code is drawn once, and 2,000 of them would only push
    the shared cache's useful entries out.
    """
    names = file_names(items, fmt)
    stamp = datetime.now(UTC).timetuple()[:6]
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w") as archive:
        for done, (item, name) in enumerate(zip(items, names, strict=True), start=1):
            body = qr.render(links.qr_url(base_url, item.code), fmt, options)
            member = zipfile.ZipInfo(name, date_time=stamp)
            member.compress_type = _COMPRESSION[fmt]
            archive.writestr(member, body)
            yield pipe.take()
            if progress is not None:
                progress(done, len(items))
        member = zipfile.ZipInfo(MANIFEST, date_time=stamp)
        member.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(member, manifest(items, names, base_url))
    yield pipe.take()
