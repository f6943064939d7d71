"""`acquisition qr CODE ...` and `acquisition qr batch ...`: print-ready codes from a terminal.

The logo is a local file path, never a URL; output goes to a file (or `-` for stdout). A batch
reads its placements from CSV, commits the links, then writes the ZIP one code at a time.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path
from typing import Any

from acquisition import links, qr, qrbatch, qrzip
from acquisition.config import Settings
from acquisition.db import connect
from acquisition.errors import Invalid

CSV_COLUMNS = ("name", "kind", "address", "cost")


def register(commands: Any) -> None:
    """Add the `qr` command to the top-level subparsers."""
    cmd = commands.add_parser(
        "qr",
        help="write a link's print-ready QR code, or a ZIP of codes for many placements",
        usage="acquisition qr CODE [options] | acquisition qr batch [options]",
        description="`acquisition qr CODE -h` and `acquisition qr batch -h` list the options.",
    )
    cmd.add_argument("code", metavar="CODE|batch")
    cmd.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS, action=_Dispatch)
    cmd.set_defaults(run=run)


class _Dispatch(argparse.Action):
    """Parse what follows CODE or `batch` with that form's own parser, while the command line is
    parsed (so `-h` and bad flags answer before any setting is read)."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        sub = _batch_parser() if namespace.code == "batch" else _code_parser()
        sub.parse_args(values, namespace=namespace)


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=qrbatch.FORMATS)
    parser.add_argument("--size-mm", help="side of the printed code in mm (default 50)")
    parser.add_argument("--dpi", help="PNG resolution (default 300)")
    parser.add_argument("--ec", help="error correction: L, M, Q or H (default M)")
    parser.add_argument("--fg", help="module colour, #RRGGBB (default #000000)")
    parser.add_argument("--bg", help="background colour, #RRGGBB (default #FFFFFF)")
    parser.add_argument("--quiet", help="quiet zone in modules, at least 4 (default 4)")
    parser.add_argument("--caption", help='text under the code, e.g. "Scan to subscribe"')
    parser.add_argument(
        "--inverted", action="store_true", help="allow light modules on a dark background"
    )
    parser.add_argument("--logo", help="PNG, JPEG or WebP file put in the middle (forces ec H)")


def _code_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acquisition qr CODE", description="Write one link's print-ready QR code."
    )
    _options(parser)
    parser.add_argument(
        "--out", help="file to write, or - for stdout (default <CODE>-<size>mm.<format>)"
    )
    return parser


def _batch_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acquisition qr batch",
        description="Make a link per placement (reusing the campaign's existing ones) and write "
        "a ZIP of their codes with manifest.csv.",
    )
    parser.add_argument("--campaign", help="campaign of the new links (with --placements)")
    parser.add_argument("--channel", type=int, action="append", help="channel id (repeatable)")
    for name in links.UTM[1:]:
        parser.add_argument(f"--{name}")
    parser.add_argument("--text", help="prefilled message text")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--placements", metavar="FILE.csv", help="CSV of placements: name,kind,address,cost"
    )
    source.add_argument(
        "--code", action="append", dest="codes", help="an existing link code (repeatable)"
    )
    _options(parser)
    parser.add_argument("--out", required=True, help="ZIP file to write")
    return parser


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.code == "batch":
        return _batch(settings, args)
    return _one(settings, args.code, args)


def _flagged(error: Invalid) -> Invalid:
    """The same error, naming the command-line flag instead of the query parameter."""
    if len(error.errors) != 1:
        return error
    field, message = error.errors[0].field, error.errors[0].message
    if field in qrbatch.OPTION_KEYS or field in ("logo", "format"):
        return Invalid(f"--{field.replace('_', '-')}: {message}", field=field)
    return error


def _params(args: argparse.Namespace) -> dict[str, str]:
    params = {
        key: getattr(args, key)
        for key in qrbatch.OPTION_KEYS
        if key != "inverted" and getattr(args, key) is not None
    }
    if args.inverted:
        params["inverted"] = "1"
    return params


def _logo(path: str | None) -> bytes | None:
    if path is None:
        return None
    if "://" in path:
        raise Invalid("must be a file on this computer, never a URL", field="logo")
    try:
        size = os.stat(path).st_size
        if size > qr.LOGO_MAX_BYTES:
            raise Invalid(
                f"{path} is {size} bytes; at most {qr.LOGO_MAX_BYTES} are accepted",
                field="logo",
            )
        return Path(path).read_bytes()
    except OSError as error:
        raise Invalid(f"cannot read {path}: {error.strerror}", field="logo") from None


def _format(args: argparse.Namespace) -> qr.Format:
    suffix = Path(args.out or "").suffix.lower().lstrip(".")
    guess = suffix if suffix in qrbatch.FORMATS else qrbatch.DEFAULT_FORMAT
    return qrbatch.parse_format(args.format or guess)


def _one(settings: Settings, code: str, args: argparse.Namespace) -> int:
    fmt = _format(args)
    try:
        options = qr.parse_options(_params(args), _logo(args.logo))
    except Invalid as error:
        raise _flagged(error) from None
    db = connect(settings)
    try:
        with db.reader() as session:
            stored = links.get(session, code).code
    finally:
        db.dispose()
    try:
        body = qr.render(links.qr_url(settings.base_url, stored), fmt, options)
    except Invalid as error:
        raise _flagged(error) from None
    out = args.out or f"{stored}-{options.size_mm:g}mm.{fmt}"
    if out == "-":
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    else:
        Path(out).write_bytes(body)
        print(f"wrote {out} ({len(body)} bytes) for {links.qr_url(settings.base_url, stored)}")
    return 0


def read_placements(path: str) -> list[dict[str, str]]:
    """Rows of name,kind,address,cost; a first row naming those columns is taken as the header."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as error:
        raise Invalid(f"--placements: cannot read {path}: {error}", field="placements") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    columns: list[str] = list(CSV_COLUMNS)
    if rows and "name" in (cell.strip().lower() for cell in rows[0]):
        columns = [cell.strip().lower() for cell in rows.pop(0)]
        unknown = [c for c in columns if c not in CSV_COLUMNS]
        if unknown:
            raise Invalid(
                f"--placements: unknown column {unknown[0]!r}; the columns are "
                + ",".join(CSV_COLUMNS),
                field="placements",
            )
    if len(rows) > qrbatch.MAX_CODES:
        raise Invalid(
            f"--placements: {len(rows)} rows; a batch takes at most {qrbatch.MAX_CODES}",
            field="placements",
        )
    placements = []
    for number, row in enumerate(rows, start=1):
        if len(row) > len(columns):
            raise Invalid(
                f"--placements: row {number} has {len(row)} cells; expected {','.join(columns)}",
                field="placements",
            )
        placements.append(
            {col: cell for col, cell in zip(columns, row, strict=False) if cell.strip()}
        )
    return placements


def _batch(settings: Settings, args: argparse.Namespace) -> int:
    data: dict[str, Any] = {**_params(args)}
    if args.format:
        data["format"] = args.format
    for key in ("campaign", *links.UTM[1:], "text"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    if args.placements:
        data["placements"] = read_placements(args.placements)
        data["channels"] = args.channel
    else:
        data["codes"] = args.codes
        if args.channel:
            data["channels"] = args.channel  # refused: the links of existing codes are as they are
    try:
        spec = qrbatch.parse(data, _logo(args.logo))
    except Invalid as error:
        raise _flagged(error) from None
    db = connect(settings)
    try:
        with db.writer.begin() as session:
            items = qrbatch.prepare(session, spec, settings.base_url)
    finally:
        db.dispose()
    # Committed: write beside the target and rename at the end, so a broken run leaves no
    # half ZIP behind (running it again reuses the links made now).
    out = Path(args.out)
    partial = out.with_name(out.name + ".partial")
    with open(partial, "wb") as f:
        for chunk in qrzip.zip_stream(items, spec.fmt, spec.options, settings.base_url, _progress):
            f.write(chunk)
    os.replace(partial, out)
    created = sum(item.created for item in items)
    print(f"wrote {out}: {len(items)} codes ({created} new links) and {qrzip.MANIFEST}")
    return 0


def _progress(done: int, total: int) -> None:
    """One line on stderr, redrawn in place on a terminal, every tenth elsewhere."""
    if sys.stderr.isatty():
        end = "\n" if done == total else ""
        print(f"\rqr batch: {done}/{total} codes", end=end, file=sys.stderr, flush=True)
    elif done == total or done % max(total // 10, 1) == 0:
        print(f"qr batch: {done}/{total} codes", file=sys.stderr, flush=True)
