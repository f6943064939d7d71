"""Site widgets: the validated config (channels, look, texts, page rules, consent, allowed site
origins), one tracked link per channel, and the public config the browser script reads.

Every text is stored and served as plain text: the script only ever sets `textContent`.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from acquisition import channels, fields, links, messengers, origins, placements
from acquisition.errors import Invalid, NotFound
from acquisition.models import Channel, Widget, WidgetLink, utcnow

PUBLIC_ID = re.compile(r"wgt_[0-9A-Za-z]{10}")
LAYOUTS = ("panel", "buttons")
POSITIONS = ("right", "left")
LANGS = ("auto", "ru", "en")
TEXT_KEYS = ("cta", "title", "qr", "close", "open", "back")
MAX_CHANNELS = 10
MAX_ORIGINS = 20
MAX_GLOBS = 20
MAX_GLOB = 200
MAX_LANGUAGES = 10
MAX_TEXT = 200
MAX_CONSENT_TEXT = 500
MAX_DELAY = 600
KEYS = {
    *("name", "channels", "origins", "layout", "position", "lang", "color", "text_color"),
    *("delay", "scroll", "include", "exclude", "texts", "consent", "whatsapp_qr"),
}
_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")
_LANGUAGE = re.compile(r"[a-z]{2}")
_VERSION = re.compile(r"[A-Za-z0-9._-]{1,32}")


@dataclass(frozen=True)
class Consent:
    version: str
    text: dict[str, str]  # language -> wording shown next to the checkbox


@dataclass(frozen=True)
class WidgetSpec:
    name: str | None
    channels: tuple[int, ...]
    origins: tuple[str, ...]
    layout: str
    position: str
    lang: str
    color: str
    text_color: str
    delay: int
    scroll: int
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    texts: dict[str, dict[str, str]]
    consent: Consent | None
    whatsapp_qr: bool

    def stored(self) -> dict[str, Any]:
        """The `widgets.config` JSON: the input form, normalised (name and origins live apart)."""
        return {
            "channels": list(self.channels),
            "layout": self.layout,
            "position": self.position,
            "lang": self.lang,
            "color": self.color,
            "text_color": self.text_color,
            "delay": self.delay,
            "scroll": self.scroll,
            "include": list(self.include),
            "exclude": list(self.exclude),
            "texts": self.texts,
            "consent": (
                {"version": self.consent.version, "text": self.consent.text}
                if self.consent
                else None
            ),
            "whatsapp_qr": self.whatsapp_qr,
        }


def parse(data: object) -> WidgetSpec:
    """Validate a whole widget; every problem is reported at once, each naming its field."""
    body = fields.obj(data)
    problems = fields.Problems()
    fields.unknown_keys(body, KEYS, "", problems)
    name = problems.take(fields.text, body, "name", max_length=100)
    channel_ids = problems.take(_channel_ids, body.get("channels"))
    allowed = problems.take(_origins, body.get("origins"))
    # null means "the default" everywhere, so a PATCH can reset a field.
    given = {key: value for key, value in body.items() if value is not None}
    layout = problems.take(fields.choice, given, "layout", LAYOUTS, default="panel")
    position = problems.take(fields.choice, given, "position", POSITIONS, default="right")
    lang = problems.take(fields.choice, given, "lang", LANGS, default="auto")
    color = problems.take(_colour, given.get("color", "#2AABEE"), "color")
    text_color = problems.take(_colour, given.get("text_color", "#FFFFFF"), "text_color")
    delay = problems.take(_number, given.get("delay", 0), "delay", MAX_DELAY)
    scroll = problems.take(_number, given.get("scroll", 0), "scroll", 100)
    include = problems.take(_globs, given.get("include"), "include")
    exclude = problems.take(_globs, given.get("exclude"), "exclude")
    texts = problems.take(_texts, given.get("texts"))
    consent = problems.take(_consent, given.get("consent"))
    whatsapp_qr = problems.take(fields.flag, given, "whatsapp_qr")
    problems.check()
    return WidgetSpec(
        name=name,
        channels=tuple(channel_ids or ()),
        origins=tuple(allowed or ()),
        layout=layout or "panel",
        position=position or "right",
        lang=lang or "auto",
        color=color or "#2AABEE",
        text_color=text_color or "#FFFFFF",
        delay=delay or 0,
        scroll=scroll or 0,
        include=tuple(include or ()),
        exclude=tuple(exclude or ()),
        texts=texts or {},
        consent=consent,
        whatsapp_qr=bool(whatsapp_qr),
    )


def _channel_ids(value: object) -> list[int]:
    if not isinstance(value, list) or not value:
        raise Invalid("must be a non-empty list of channel ids, in button order", "channels")
    if len(value) > MAX_CHANNELS:
        raise Invalid(f"must list at most {MAX_CHANNELS} channels", field="channels")
    ids = [fields.integer(item, f"channels.{i}") for i, item in enumerate(value)]
    if len(set(ids)) != len(ids):
        raise Invalid("lists the same channel twice", field="channels")
    return ids


def _origins(value: object) -> list[str]:
    if not isinstance(value, list) or not value:
        raise Invalid(
            "must be a non-empty list of the site origins allowed to embed the widget, "
            "such as https://example.org",
            field="origins",
        )
    if len(value) > MAX_ORIGINS:
        raise Invalid(f"must list at most {MAX_ORIGINS} origins", field="origins")
    result = [origins.parse(item, f"origins.{i}") for i, item in enumerate(value)]
    return list(dict.fromkeys(result))


def _colour(value: object, field: str) -> str:
    if not isinstance(value, str) or not _COLOUR.fullmatch(value):
        raise Invalid("must be a colour written #RRGGBB, such as #2AABEE", field=field)
    return value.upper()


def _number(value: object, field: str, high: int) -> int:
    return fields.integer(value, field, low=0, high=high)


def _globs(value: object, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid("must be a list of path patterns such as /pricing*", field=field)
    if len(value) > MAX_GLOBS:
        raise Invalid(f"must list at most {MAX_GLOBS} patterns", field=field)
    result = []
    for i, glob in enumerate(value):
        name = f"{field}.{i}"
        if not isinstance(glob, str) or not 1 <= len(glob) <= MAX_GLOB:
            raise Invalid(f"must be a path pattern of 1-{MAX_GLOB} characters", field=name)
        if not all("!" <= char <= "~" for char in glob):
            raise Invalid("must be printable ASCII without spaces (percent-encode others)", name)
        if glob[0] not in "/*":
            raise Invalid("must start with / or * (it is matched against the page's path)", name)
        result.append(glob)
    return result


def _texts(value: object) -> dict[str, dict[str, str]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid('must be an object such as {"en": {"cta": "Chat with us"}}', "texts")
    if len(value) > MAX_LANGUAGES:
        raise Invalid(f"must hold at most {MAX_LANGUAGES} languages", field="texts")
    problems = fields.Problems()
    result: dict[str, dict[str, str]] = {}
    for language, overrides in value.items():
        prefix = f"texts.{language}"
        if not _LANGUAGE.fullmatch(language):
            problems.add(prefix, "must be a two-letter lower-case language code such as en")
            continue
        if not isinstance(overrides, dict):
            problems.add(prefix, f"must be an object with some of: {', '.join(TEXT_KEYS)}")
            continue
        for key in overrides:
            if key == "consent":
                problems.add(
                    f"{prefix}.consent", f"set the consent wording in consent.text.{language}"
                )
            elif key not in TEXT_KEYS:
                problems.add(f"{prefix}.{key}", f"unknown text; known: {', '.join(TEXT_KEYS)}")
        own = {
            key: problems.take(
                fields.text, overrides, key, max_length=MAX_TEXT, prefix=prefix + "."
            )
            for key in TEXT_KEYS
        }
        result[language] = {key: text for key, text in own.items() if text}
    problems.check()
    return {language: texts for language, texts in result.items() if texts}


def _consent(value: object) -> Consent | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Invalid('must be an object such as {"version": "v1", "text": {...}}', "consent")
    problems = fields.Problems()
    fields.unknown_keys(value, {"version", "text"}, "consent.", problems)
    version = value.get("version")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        problems.add(
            "consent.version",
            "must be 1-32 letters, digits, '.', '_' or '-' naming the wording's version",
        )
    wording = value.get("text") or {}
    if not isinstance(wording, dict) or len(wording) > MAX_LANGUAGES:
        problems.add("consent.text", f"must map at most {MAX_LANGUAGES} languages to a wording")
        wording = {}
    text: dict[str, str] = {}
    for language in wording:
        if not isinstance(language, str) or not _LANGUAGE.fullmatch(language):
            problems.add(f"consent.text.{language}", "must be a two-letter language code")
            continue
        found = problems.take(
            fields.text, wording, language, max_length=MAX_CONSENT_TEXT, prefix="consent.text."
        )
        if found:
            text[language] = found
    problems.check()
    assert isinstance(version, str)
    return Consent(version, text)


# --- storage ------------------------------------------------------------------------------------


def create(session: Session, spec: WidgetSpec) -> Widget:
    """A widget, its placement (kind "widget") and one tracked link per channel."""
    known = _known_channels(session, spec.channels)
    public_id = _fresh_id(session)
    name = spec.name or f"Site widget {public_id}"
    placement = placements.create(
        session, placements.PlacementSpec(name, "widget", None, None), None
    )
    session.flush()
    now = utcnow()
    widget = Widget(
        public_id=public_id,
        name=name,
        placement_id=placement.id,
        config=spec.stored(),
        origins=list(spec.origins),
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(widget)
    session.flush()
    _link_channels(session, widget, spec.channels, known)
    return widget


def update(session: Session, widget: Widget, data: object) -> Widget:
    """Apply a partial edit (absent keys keep their value, null resets) and bump the version;
    an edit that changes nothing changes nothing, the version included."""
    body = fields.obj(data)
    problems = fields.Problems()
    fields.unknown_keys(body, KEYS, "", problems)
    problems.check()
    spec = parse({**editable(widget), **body})
    known = _known_channels(session, spec.channels)
    same_name = not spec.name or spec.name == widget.name
    if same_name and spec.stored() == widget.config and list(spec.origins) == widget.origins:
        return widget
    if spec.name and spec.name != widget.name:
        widget.name = spec.name
        placements.get(session, widget.placement_id).name = spec.name
    widget.config = spec.stored()
    widget.origins = list(spec.origins)
    widget.version += 1
    widget.updated_at = utcnow()
    _link_channels(session, widget, spec.channels, known)
    session.flush()
    return widget


def editable(widget: Widget) -> dict[str, Any]:
    """The widget in the form `parse` accepts."""
    return {"name": widget.name, "origins": list(widget.origins), **widget.config}


def _known_channels(session: Session, ids: tuple[int, ...]) -> dict[int, Channel]:
    known = channels.get_many(session, ids)
    problems = fields.Problems()
    for i, cid in enumerate(ids):
        if cid not in known:
            problems.add(f"channels.{i}", f"no channel with id {cid}")
    problems.check()
    return known


def _link_channels(
    session: Session, widget: Widget, ids: tuple[int, ...], known: Mapping[int, Channel]
) -> None:
    """Give every channel its tracked link; a channel that was on the widget before keeps its."""
    have = {wl.channel_id for wl in widget.links}
    for cid in ids:
        if cid in have:
            continue
        spec = links.parse({"channels": [cid], "placement_id": widget.placement_id})
        link = links.create_many(session, [spec], batch=False)[0]
        widget.links.append(
            WidgetLink(channel_id=cid, link_id=link.id, link=link, channel=known[cid])
        )
    session.flush()


def _fresh_id(session: Session) -> str:
    alphabet = string.ascii_letters + string.digits
    while True:
        candidate = "wgt_" + "".join(secrets.choice(alphabet) for _ in range(10))
        if session.scalar(select(Widget.id).where(Widget.public_id == candidate)) is None:
            return candidate


def get(session: Session, public_id: str) -> Widget:
    widget = None
    if PUBLIC_ID.fullmatch(public_id):
        widget = session.scalar(select(Widget).where(Widget.public_id == public_id))
    if widget is None:
        raise NotFound(f"no widget with id {public_id!r}", field="id")
    return widget


def list_all(session: Session) -> list[Widget]:
    return list(session.scalars(select(Widget).order_by(Widget.id)))


# --- what the browser and the API see ----------------------------------------------------------


def script_url(base_url: str, public_id: str) -> str:
    return f"{base_url}/w/{public_id}.js"


def snippet(base_url: str, public_id: str) -> str:
    return f'<script async src="{script_url(base_url, public_id)}"></script>'


def buttons(widget: Widget, base_url: str) -> list[dict[str, Any]]:
    """The messenger buttons in configured order: label, tracked short link, desktop QR URL."""
    by_channel = {wl.channel_id: wl for wl in widget.links}
    active = [by_channel[cid] for cid in widget.config["channels"]]
    kinds = [wl.channel.messenger for wl in active]
    result = []
    for wl in active:
        adapter = messengers.get(wl.channel.messenger)
        label = adapter.LABEL
        if kinds.count(adapter.NAME) > 1:  # two Telegram bots: tell them apart
            label = f"{adapter.LABEL}: {wl.channel.name}"
        qr = adapter.PHONE_ONLY or (adapter.NAME == "whatsapp" and widget.config["whatsapp_qr"])
        code = wl.link.code
        result.append(
            {
                "channel": wl.channel_id,
                "messenger": adapter.NAME,
                "label": label,
                "code": code,
                "href": links.short_url(base_url, code),
                "qr": f"{base_url}/w/{widget.public_id}/qr/{code}.svg" if qr else None,
            }
        )
    return result


def script_config(widget: Widget, base_url: str) -> dict[str, Any]:
    """The JSON the script reads (widgets/README.md §8); texts are plain text, never HTML."""
    config = widget.config
    texts = {language: dict(own) for language, own in config["texts"].items()}
    consent = config["consent"]
    if consent:
        for language, wording in consent["text"].items():
            texts.setdefault(language, {})["consent"] = wording
    return {
        "id": widget.public_id,
        "layout": config["layout"],
        "position": config["position"],
        "lang": config["lang"],
        "color": config["color"],
        "text_color": config["text_color"],
        "delay": config["delay"],
        "scroll": config["scroll"],
        "include": config["include"],
        "exclude": config["exclude"],
        "texts": texts,
        "consent_version": consent["version"] if consent else None,
        "buttons": [
            {key: b[key] for key in ("messenger", "label", "href", "qr")}
            for b in buttons(widget, base_url)
        ],
        "beacon": f"{base_url}/w/{widget.public_id}/e",
    }


def public(widget: Widget, base_url: str) -> dict[str, Any]:
    """The API form: the editable fields, the embed snippet and each button's tracked link."""
    return {
        "id": widget.public_id,
        "script_url": script_url(base_url, widget.public_id),
        "snippet": snippet(base_url, widget.public_id),
        **editable(widget),
        "placement_id": widget.placement_id,
        "links": [
            {key: b[key] for key in ("channel", "messenger", "code", "href", "qr")}
            for b in buttons(widget, base_url)
        ],
        "version": widget.version,
        "created_at": widget.created_at.isoformat(),
        "updated_at": widget.updated_at.isoformat(),
    }
