"""Tracked links: short code, target channel(s), campaign/UTM, placement; creation and lookup.

Links are created one at a time or in all-or-nothing batches; an edit bumps the version and keeps
a snapshot of every version, so clicks recorded under an older version stay explainable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from acquisition import channels, codes, fields, placements
from acquisition.errors import FieldError, Invalid, NotFound
from acquisition.models import Link, LinkChannel, LinkRevision, utcnow

UTM = ("campaign", "source", "medium", "content", "term")
MAX_CHANNELS = 10
MAX_BATCH = 1000
KEYS = {
    *UTM,
    "channels",
    "placement",
    "placement_id",
    "text",
    "slug",
    "valid_from",
    "valid_until",
    "disabled",
    "welcome_text",
}


@dataclass(frozen=True)
class LinkSpec:
    channels: tuple[int, ...]
    utm: dict[str, str | None]
    placement: placements.PlacementSpec | None
    placement_id: int | None
    text: str | None
    slug: str | None
    valid_from: datetime | None
    valid_until: datetime | None
    disabled: bool
    welcome_text: str | None = None


@dataclass(frozen=True)
class Target:
    """What the redirect needs to know about a link; small and immutable so it can be cached."""

    id: int
    code: str
    version: int
    utm: tuple[tuple[str, str | None], ...]
    text: str | None
    valid_from: datetime | None
    valid_until: datetime | None
    disabled: bool
    channels: tuple[tuple[int, str, str, str], ...]  # (id, messenger, handle, name)
    placement: str | None

    def state(self, now: datetime) -> str:
        if self.disabled:
            return "disabled"
        if self.valid_from is not None and now < self.valid_from:
            return "not-yet"
        if self.valid_until is not None and now >= self.valid_until:
            return "expired"
        return "active"


def parse(data: object, prefix: str = "") -> LinkSpec:
    body = fields.obj(data, prefix.rstrip(".") or "body")
    problems = fields.Problems()
    fields.unknown_keys(body, KEYS, prefix, problems)
    channel_ids = problems.take(_channel_ids, body.get("channels"), prefix + "channels")
    utm = {
        name: problems.take(fields.text, body, name, max_length=100, prefix=prefix) for name in UTM
    }
    placement = None
    if body.get("placement") is not None:
        placement = problems.take(placements.parse, body["placement"], f"{prefix}placement.")
    placement_id = None
    if body.get("placement_id") is not None:
        placement_id = problems.take(fields.integer, body["placement_id"], prefix + "placement_id")
        if placement is not None:
            problems.add(prefix + "placement_id", "give either placement or placement_id, not both")
    text = problems.take(fields.text, body, "text", max_length=500, prefix=prefix, multiline=True)
    slug = None
    if body.get("slug") is not None:
        slug = problems.take(codes.parse_slug, body["slug"], prefix + "slug")
    valid_from = problems.take(fields.timestamp, body, "valid_from", prefix)
    valid_until = problems.take(fields.timestamp, body, "valid_until", prefix)
    if valid_from and valid_until and valid_until <= valid_from:
        problems.add(prefix + "valid_until", "must be later than valid_from")
    disabled = problems.take(fields.flag, body, "disabled", prefix)
    welcome = problems.take(
        fields.text, body, "welcome_text", max_length=1000, prefix=prefix, multiline=True
    )
    problems.check()
    return LinkSpec(
        channels=tuple(channel_ids or ()),
        utm=utm,
        placement=placement,
        placement_id=placement_id,
        text=text,
        slug=slug,
        valid_from=valid_from,
        valid_until=valid_until,
        disabled=bool(disabled),
        welcome_text=welcome,
    )


def _channel_ids(value: object, field: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise Invalid("must be a non-empty list of channel ids", field=field)
    if len(value) > MAX_CHANNELS:
        raise Invalid(f"must list at most {MAX_CHANNELS} channels", field=field)
    ids = [fields.integer(item, f"{field}.{i}") for i, item in enumerate(value)]
    if len(set(ids)) != len(ids):
        raise Invalid("lists the same channel twice", field=field)
    return ids


def parse_batch(data: object) -> tuple[list[LinkSpec | None], list[FieldError]]:
    """Parse every item; bad items become None and their errors are returned, not raised, so
    that `create_many` can add the reference errors of the good items to the same report."""
    body = fields.obj(data)
    items = body.get("links")
    if not isinstance(items, list) or not items:
        raise Invalid("must be a non-empty list of links", field="links")
    if len(items) > MAX_BATCH:
        raise Invalid(f"must hold at most {MAX_BATCH} links per request", field="links")
    problems = fields.Problems()
    fields.unknown_keys(body, {"links"}, "", problems)
    specs = [problems.take(parse, item, f"links.{i}.") for i, item in enumerate(items)]
    return specs, problems.errors


def create_many(
    session: Session,
    specs: Sequence[LinkSpec | None],
    errors: Sequence[FieldError] = (),
    batch: bool = True,
) -> list[Link]:
    """Create every link or none: references are checked for all items before anything is added,
    and the answer lists the problems of every item at once."""
    prefix = (lambda i: f"links.{i}.") if batch else (lambda i: "")
    errors = list(errors)
    known = channels.get_many(session, [cid for spec in specs if spec for cid in spec.channels])
    for i, spec in enumerate(specs):
        if spec is None:
            continue
        for j, cid in enumerate(spec.channels):
            if cid not in known:
                errors.append(FieldError(f"{prefix(i)}channels.{j}", f"no channel with id {cid}"))
        if spec.placement_id is not None:
            try:
                placements.get(session, spec.placement_id, f"{prefix(i)}placement_id")
            except Invalid as error:
                errors.extend(error.errors)
    slugs = [spec.slug for spec in specs if spec and spec.slug]
    taken = set(session.scalars(select(Link.code).where(Link.code.in_(slugs)))) if slugs else set()
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec is None:
            continue
        if spec.slug and (spec.slug in taken or spec.slug in seen):
            errors.append(FieldError(f"{prefix(i)}slug", f"slug {spec.slug!r} is already in use"))
        if spec.slug:
            seen.add(spec.slug)
    if errors:
        items = {e.field.split(".")[1] for e in errors if e.field.startswith("links.")}
        bad = len(items) if batch else 1
        summary = f"{bad} of {len(specs)} links are invalid; nothing was created"
        raise Invalid(errors[0].message if not batch else summary, errors=errors)
    valid = [spec for spec in specs if spec is not None]
    generated = _fresh_codes(session, sum(1 for spec in valid if not spec.slug), exclude=seen)
    now = utcnow()
    created = []
    for spec in valid:
        link = Link(
            code=spec.slug or generated.pop(),
            text=spec.text,
            valid_from=spec.valid_from,
            valid_until=spec.valid_until,
            disabled=spec.disabled,
            welcome_text=spec.welcome_text,
            version=1,
            created_at=now,
            updated_at=now,
            **spec.utm,
        )
        if spec.placement is not None:
            link.placement = placements.create(session, spec.placement, spec.utm["campaign"])
        elif spec.placement_id is not None:
            link.placement_id = spec.placement_id
        link.targets = [
            LinkChannel(channel_id=cid, position=pos, channel=known[cid])
            for pos, cid in enumerate(spec.channels)
        ]
        session.add(link)
        created.append(link)
    session.flush()
    for link in created:
        _remember(session, link)
    return created


def create(session: Session, spec: LinkSpec) -> Link:
    return create_many(session, [spec], batch=False)[0]


def _fresh_codes(session: Session, count: int, exclude: set[str]) -> list[str]:
    """Random codes not yet in use; the unique index still guards a race with another writer."""
    result: set[str] = set()
    while len(result) < count:
        candidates = {codes.generate() for _ in range(count - len(result))} - exclude - result
        taken = set(session.scalars(select(Link.code).where(Link.code.in_(candidates))))
        result |= candidates - taken
    return list(result)


def update(session: Session, link: Link, data: object) -> Link:
    """Apply a partial edit, bump the version and keep a snapshot of the new version."""
    body = fields.obj(data)
    allowed = KEYS - {"slug", "placement"}
    problems = fields.Problems()
    fields.unknown_keys(body, allowed, "", problems)
    merged = {**snapshot(link), **body}
    merged.pop("code", None)
    merged.pop("version", None)
    merged.pop("placement", None)
    merged = {key: value for key, value in merged.items() if key in allowed}
    problems.check()
    spec = parse(merged)
    if spec.channels != tuple(t.channel_id for t in link.targets):
        known = channels.get_many(session, spec.channels)
        missing = [i for i, cid in enumerate(spec.channels) if cid not in known]
        if missing:
            raise Invalid("no such channel", field=f"channels.{missing[0]}")
        link.targets = [
            LinkChannel(channel_id=cid, position=pos, channel=known[cid])
            for pos, cid in enumerate(spec.channels)
        ]
    if spec.placement_id is not None and spec.placement_id != link.placement_id:
        placements.get(session, spec.placement_id)
    link.placement_id = spec.placement_id
    for name in UTM:
        setattr(link, name, spec.utm[name])
    link.text = spec.text
    link.valid_from, link.valid_until = spec.valid_from, spec.valid_until
    link.disabled = spec.disabled
    link.welcome_text = spec.welcome_text
    link.version += 1
    link.updated_at = utcnow()
    session.flush()
    session.refresh(link)
    _remember(session, link)
    return link


def snapshot(link: Link) -> dict[str, Any]:
    return {
        "code": link.code,
        "version": link.version,
        "channels": [t.channel_id for t in link.targets],
        **{name: getattr(link, name) for name in UTM},
        "placement_id": link.placement_id,
        "text": link.text,
        "valid_from": link.valid_from.isoformat() if link.valid_from else None,
        "valid_until": link.valid_until.isoformat() if link.valid_until else None,
        "disabled": link.disabled,
        "welcome_text": link.welcome_text,
    }


def _remember(session: Session, link: Link) -> None:
    session.add(LinkRevision(link_id=link.id, version=link.version, snapshot=snapshot(link)))


def get(session: Session, code: str) -> Link:
    link = session.scalar(select(Link).where(Link.code.in_(_spellings(code))))
    if link is None:
        raise NotFound(f"no link with code {code!r}", field="code")
    return link


def _spellings(code: str) -> list[str]:
    return list(dict.fromkeys([codes.canonical(code), codes.lookalike(code)]))


def find_target(session: Session, code: str) -> Target | None:
    if not codes.could_be_code(code):
        return None
    links = session.scalars(select(Link).where(Link.code.in_(_spellings(code)))).all()
    if not links:
        return None
    # A literal match (a custom slug spelled with O or L) wins over the Crockford reading.
    link = next((row for row in links if row.code == codes.canonical(code)), links[0])
    return Target(
        id=link.id,
        code=link.code,
        version=link.version,
        utm=tuple((name, getattr(link, name)) for name in UTM),
        text=link.text,
        valid_from=link.valid_from,
        valid_until=link.valid_until,
        disabled=link.disabled,
        channels=tuple(
            (t.channel.id, t.channel.messenger, t.channel.handle, t.channel.name)
            for t in link.targets
        ),
        placement=link.placement.name if link.placement else None,
    )


def page(
    session: Session, limit: int, before: int | None = None, campaign: str | None = None
) -> list[Link]:
    """Newest first; `before` is the id of the last link of the previous page (a cursor)."""
    query = select(Link).order_by(Link.id.desc()).limit(limit)
    if before is not None:
        query = query.where(Link.id < before)
    if campaign is not None:
        query = query.where(Link.campaign == campaign)
    return list(session.scalars(query))


def revisions(session: Session, link: Link) -> list[LinkRevision]:
    return list(
        session.scalars(
            select(LinkRevision)
            .where(LinkRevision.link_id == link.id)
            .order_by(LinkRevision.version)
        )
    )


def count(session: Session) -> int:
    return session.scalar(select(func.count(Link.id))) or 0


def short_url(base_url: str, code: str) -> str:
    return f"{base_url}/{code}"


def qr_url(base_url: str, code: str) -> str:
    """What a printed QR code encodes: upper case (alphanumeric mode, a smaller code), and the
    /Q/ path marks the visit as a scan. Codes and hosts are case-insensitive, so it still works."""
    return f"{base_url}/Q/{code}".upper()


def public(link: Link, base_url: str) -> dict[str, Any]:
    return {
        "code": link.code,
        "url": short_url(base_url, link.code),
        "qr": {
            **{fmt: f"{short_url(base_url, link.code)}.{fmt}" for fmt in ("svg", "png", "pdf")},
            "payload": qr_url(base_url, link.code),
        },
        "channels": [t.channel_id for t in link.targets],
        **{name: getattr(link, name) for name in UTM},
        "placement": placements.public(link.placement) if link.placement else None,
        "text": link.text,
        "valid_from": link.valid_from.isoformat() if link.valid_from else None,
        "valid_until": link.valid_until.isoformat() if link.valid_until else None,
        "disabled": link.disabled,
        "welcome_text": link.welcome_text,
        "version": link.version,
        "created_at": link.created_at.isoformat(),
        "updated_at": link.updated_at.isoformat(),
    }
