"""QR codes for a whole campaign at once: one link and one print-ready code per placement.

A batch names its placements (new links are made for those the campaign does not have yet) or
existing link codes. Everything that could fail is checked here, before the first byte of the
ZIP (`qrzip`), so a streamed answer never breaks off half-way over a bad parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from acquisition import channels, codes, fields, links, placements, qr
from acquisition.errors import FieldError, Invalid
from acquisition.models import Link, Placement, utcnow
from acquisition.qrzip import Item

MAX_CODES = 2000
# Rendering cost of a PNG batch is its pixel count: the slowest PNGs (a billboard with a caption)
# render at about 250 million pixels a second on one core, so 40 Gpx is ~3 minutes. That already
# allows 2,000 billboards of 1.5 m at 72 dpi (4252 px, 36 Gpx); past it the worker's thread is
# held for longer than clients and proxies wait. Vector formats have no pixel cost.
MAX_PIXELS = 40_000_000_000
FORMATS: tuple[qr.Format, ...] = ("svg", "png", "pdf")
DEFAULT_FORMAT: qr.Format = "svg"
OPTION_KEYS = ("size_mm", "dpi", "ec", "fg", "bg", "quiet", "caption", "inverted")
LINK_KEYS = ("campaign", "channels", *links.UTM[1:], "text")
KEYS = {*LINK_KEYS, *OPTION_KEYS, "format", "placements", "codes"}


@dataclass(frozen=True)
class BatchSpec:
    fmt: qr.Format
    options: qr.QrOptions
    link: links.LinkSpec | None  # what every new link shares (the placements form)
    placements: tuple[placements.PlacementSpec, ...] = ()
    codes: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return len(self.placements) or len(self.codes)


# --------------------------------------------------------------------------- parsing


def parse_format(value: object, field: str = "format") -> qr.Format:
    if not isinstance(value, str) or value.lower() not in FORMATS:
        raise Invalid(f"must be one of: {', '.join(FORMATS)}", field=field)
    return value.lower()  # type: ignore[return-value]


def option_params(body: Mapping[str, Any]) -> dict[str, str]:
    """The QR options of a JSON body as the query-string form `qr.parse_options` reads."""
    params: dict[str, str] = {}
    for key in OPTION_KEYS:
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool):
            if key != "inverted":
                raise Invalid(f"{key} must not be true or false", field=key)
            value = "1" if value else "0"
        elif isinstance(value, int | float):
            value = str(value)
        elif not isinstance(value, str):
            raise Invalid(f"{key} must be a string or a number", field=key)
        params[key] = value
    return params


def parse(data: object, logo: bytes | None = None) -> BatchSpec:
    """Parse a whole batch request; every bad field and item is named in one answer."""
    body = fields.obj(data)
    problems = fields.Problems()
    fields.unknown_keys(body, KEYS, "", problems)
    fmt = problems.take(parse_format, body.get("format", DEFAULT_FORMAT))
    options = problems.take(lambda: qr.parse_options(option_params(body), logo))
    link: links.LinkSpec | None = None
    places: tuple[placements.PlacementSpec, ...] = ()
    wanted: tuple[str, ...] = ()
    if ("placements" in body) == ("codes" in body):
        problems.add("placements", "give either placements or codes, not both and not neither")
    elif "placements" in body:
        campaign = body.get("campaign")
        if campaign is None or (isinstance(campaign, str) and not campaign.strip()):
            problems.add("campaign", "is required: a batch of placements belongs to a campaign")
        shared = {key: body[key] for key in LINK_KEYS if key in body}
        link = problems.take(links.parse, shared)
        places = _placements(body["placements"], problems)
    else:
        for key in LINK_KEYS:
            if key in body:
                problems.add(key, "is only used with placements; these codes' links exist")
        wanted = _codes(body["codes"], problems)
    what = "placements" if "placements" in body else "codes"
    bad_items = {e.field.split(".")[1] for e in problems.errors if e.field.startswith(f"{what}.")}
    total = len(body[what]) if isinstance(body.get(what), list) else 0
    problems.check(
        f"{len(bad_items)} of {total} {what} are invalid; nothing was created"
        if bad_items
        else "some fields are invalid; nothing was created"
    )
    assert fmt is not None and options is not None
    return BatchSpec(fmt, options, link, places, wanted)


def _list(value: object, field: str, what: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise Invalid(f"must be a non-empty list of {what}", field=field)
    if len(value) > MAX_CODES:
        raise Invalid(f"must hold at most {MAX_CODES} {what} per batch", field=field)
    return value


def _placements(value: object, problems: fields.Problems) -> tuple[placements.PlacementSpec, ...]:
    items = problems.take(_list, value, "placements", "placements")
    found: list[placements.PlacementSpec] = []
    first: dict[str, int] = {}
    for i, item in enumerate(items or ()):
        spec = problems.take(placements.parse, item, f"placements.{i}.")
        if spec is None:
            continue
        if spec.name in first:
            problems.add(
                f"placements.{i}.name",
                f"same name as placements.{first[spec.name]}: each placement needs its own name "
                "to be told apart in the statistics",
            )
        first.setdefault(spec.name, i)
        found.append(spec)
    return tuple(found)


def _codes(value: object, problems: fields.Problems) -> tuple[str, ...]:
    items = problems.take(_list, value, "codes", "link codes")
    found: list[str] = []
    first: dict[str, int] = {}
    for i, item in enumerate(items or ()):
        if not isinstance(item, str) or not codes.could_be_code(item):
            problems.add(f"codes.{i}", "must be a link code such as K7Q2XP9")
            continue
        key = codes.lookalike(item)
        if key in first:
            problems.add(f"codes.{i}", f"same code as codes.{first[key]}")
        first.setdefault(key, i)
        found.append(item)
    return tuple(found)


# --------------------------------------------------------------------------- links


def prepare(session: Session, spec: BatchSpec, base_url: str) -> list[Item]:
    """The batch's links in request order: found, reused or created (flushed, not committed).

    A placement reuses the campaign's live link of the same placement name, channels, UTM and
    text, so sending the same batch again (say, after the download broke off) makes nothing twice.
    """
    check_size(spec)
    items = _from_placements(session, spec) if spec.link is not None else _from_codes(session, spec)
    check_codes(spec, [links.qr_url(base_url, item.code) for item in items])
    return items


def _from_placements(session: Session, spec: BatchSpec) -> list[Item]:
    assert spec.link is not None
    shared = spec.link
    known = channels.get_many(session, shared.channels)
    missing = [
        FieldError(f"channels.{j}", f"no channel with id {cid}")
        for j, cid in enumerate(shared.channels)
        if cid not in known
    ]
    if missing:
        raise Invalid(missing[0].message, errors=missing)
    existing = _existing(session, shared, [p.name for p in spec.placements], utcnow())
    fresh = [replace(shared, placement=p) for p in spec.placements if p.name not in existing]
    made = iter(links.create_many(session, fresh, batch=True))
    items = []
    for place in spec.placements:
        link = existing.get(place.name)
        created = link is None
        if link is None:
            link = next(made)
        stored = link.placement
        items.append(
            Item(
                code=link.code,
                placement=stored.name if stored else place.name,
                kind=stored.kind if stored else place.kind,
                address=stored.address if stored else place.address,
                cost=stored.cost if stored else place.cost,
                created=created,
            )
        )
    return items


def _existing(
    session: Session, shared: links.LinkSpec, names: Sequence[str], now: datetime
) -> dict[str, Link]:
    rows = session.scalars(
        select(Link)
        .join(Link.placement)
        .where(Placement.campaign == shared.utm["campaign"], Placement.name.in_(names))
        .order_by(Link.id)
    ).all()
    found: dict[str, Link] = {}
    for link in rows:
        live = not link.disabled and (link.valid_until is None or link.valid_until > now)
        same = (
            tuple(t.channel_id for t in link.targets) == shared.channels
            and all(getattr(link, name) == value for name, value in shared.utm.items())
            and link.text == shared.text
        )
        if live and same and link.placement is not None:
            found[link.placement.name] = link  # ordered by id: the newest wins
    return found


def _from_codes(session: Session, spec: BatchSpec) -> list[Item]:
    spellings = {s for c in spec.codes for s in (codes.canonical(c), codes.lookalike(c))}
    rows = session.scalars(select(Link).where(Link.code.in_(spellings))).all()
    by_code = {row.code: row for row in rows}
    problems = fields.Problems()
    items = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(spec.codes):
        link = by_code.get(codes.canonical(raw)) or by_code.get(codes.lookalike(raw))
        if link is None:
            problems.add(f"codes.{i}", f"no link with code {raw!r}")
            continue
        if link.code in seen:
            problems.add(f"codes.{i}", f"the same link as codes.{seen[link.code]}")
            continue
        seen[link.code] = i
        place = link.placement
        items.append(
            Item(
                code=link.code,
                placement=place.name if place else None,
                kind=place.kind if place else None,
                address=place.address if place else None,
                cost=place.cost if place else None,
                created=False,
            )
        )
    problems.check(f"{len(problems.errors)} of {len(spec.codes)} codes are invalid")
    return items


# --------------------------------------------------------------------------- bounds


def check_size(spec: BatchSpec) -> None:
    """Refuse a PNG batch whose pixels would take too long to draw (see MAX_PIXELS)."""
    if spec.fmt != "png":
        return
    side = spec.options.png_side_px
    if side > qr.MAX_PNG_PX:
        raise Invalid(
            f"a PNG of {spec.options.size_mm:g} mm at {spec.options.dpi} dpi would be {side} px "
            f"wide, too large: the maximum is {qr.MAX_PNG_PX} px; use SVG or PDF for larger prints",
            field="dpi",
        )
    height = side + round(side * qr.CAPTION_BAND) if spec.options.caption else side
    pixels = spec.count * side * height
    if pixels > MAX_PIXELS:
        raise Invalid(
            f"{spec.count} PNGs of {side}x{height} px are {pixels / 1e9:.0f} gigapixels; a batch "
            f"may draw at most {MAX_PIXELS / 1e9:.0f} (about 3 minutes of rendering): lower "
            "the dpi, split the batch, or ask for SVG or PDF, which print at any size",
            field="dpi",
        )


def check_codes(spec: BatchSpec, payloads: Sequence[str]) -> None:
    """Every code's PNG must give each module at least qr.MIN_PX_PER_MODULE pixels."""
    if spec.fmt != "png":
        return
    options = spec.options
    side = options.png_side_px
    # Version 40 has 177 modules: a PNG this wide fits any symbol, no need to encode to know.
    if side >= qr.MIN_PX_PER_MODULE * (177 + 2 * options.quiet):
        return
    for payload in dict.fromkeys(payloads):
        modules = qr.encode(payload, options.ec, options.logo is not None).size + 2 * options.quiet
        if side < qr.MIN_PX_PER_MODULE * modules:
            raise Invalid(
                f"{side} px is too small for these codes: {modules} modules need at least "
                f"{qr.MIN_PX_PER_MODULE * modules} px; raise dpi or size_mm",
                field="dpi",
            )
