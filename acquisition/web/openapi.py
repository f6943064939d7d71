"""The OpenAPI 3.1 document of /api/v1, written by hand next to the handlers it describes."""

from __future__ import annotations

from typing import Any

from acquisition import links, messengers, placements, qr, qrbatch, stats, widget_events, widgets

_TEXT100 = {"type": ["string", "null"], "maxLength": 100}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref("Problem")}},
    }


ERRORS = {
    "400": _problem("The body is not JSON or has the wrong content type"),
    "401": _problem("Missing, invalid or revoked API key"),
    "413": _problem("The body is too large"),
    "422": _problem("A field is invalid; `errors` names each one"),
    "429": _problem("Too many requests"),
    "503": _problem("The database is unavailable; retry after the Retry-After seconds"),
}


def _op(
    summary: str,
    ok: str,
    schema: dict[str, Any],
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    missing: bool = False,
) -> dict[str, Any]:
    responses: dict[str, Any] = {ok: {"description": summary, **_json(schema)}, **ERRORS}
    if missing:
        responses["404"] = _problem("No such resource")
    if body is None:
        responses.pop("400")
        responses.pop("413")
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
    if params:
        op["parameters"] = params
    return op


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _qr_paths(code: dict[str, Any], link_in: dict[str, Any]) -> dict[str, Any]:
    """POST /links/{code}/qr and POST /qr/batch (the public GET /{code}.svg|png|pdf is outside
    /api/v1; it takes the same options as query parameters)."""
    options = {
        "format": {"type": "string", "enum": list(qrbatch.FORMATS), "default": "svg"},
        "size_mm": {
            "type": ["number", "string"],
            "minimum": qr.MIN_SIZE_MM,
            "maximum": qr.MAX_SIZE_MM,
            "default": 50,
        },
        "dpi": {"type": ["integer", "string"], "minimum": qr.MIN_DPI, "maximum": qr.MAX_DPI},
        "ec": {"type": "string", "enum": ["L", "M", "Q", "H"], "default": "M"},
        "fg": {"type": "string", "pattern": "^#?[0-9A-Fa-f]{6}$", "default": "#000000"},
        "bg": {"type": "string", "pattern": "^#?[0-9A-Fa-f]{6}$", "default": "#FFFFFF"},
        "quiet": {"type": ["integer", "string"], "minimum": qr.MIN_QUIET, "maximum": qr.MAX_QUIET},
        "caption": {"type": "string", "maxLength": qr.MAX_CAPTION},
        "inverted": {"type": ["boolean", "string"]},
    }
    files = {
        fmt: {"schema": {"type": "string", "format": "binary"}} for fmt in qr.MEDIA_TYPES.values()
    }
    item = {"type": "array", "minItems": 1, "maxItems": qrbatch.MAX_CODES}
    batch_in = {
        "type": "object",
        "additionalProperties": False,
        "description": "either placements (new links, campaign and channels required) or codes",
        "properties": {
            **{k: link_in["properties"][k] for k in qrbatch.LINK_KEYS},
            **options,
            "placements": {**item, "items": link_in["properties"]["placement"]},
            "codes": {**item, "items": {"type": "string", "maxLength": 32}},
        },
    }
    errors = {k: v for k, v in ERRORS.items() if k != "429"}
    return {
        "/links/{code}/qr": {
            "post": {
                "summary": "The link's QR code with an uploaded logo (multipart) or options (JSON)",
                "parameters": [code],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    **options,
                                    "logo": {"type": "string", "format": "binary"},
                                },
                            }
                        },
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": options,
                            }
                        },
                    },
                },
                "responses": {
                    "200": {"description": "The rendered file", "content": files},
                    "404": _problem("No such link"),
                    **errors,
                },
            }
        },
        "/qr/batch": {
            "post": {
                "summary": "Links for a campaign's placements and a ZIP of their codes",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": batch_in},
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["batch"],
                                "properties": {
                                    "batch": {"type": "string", "description": "the JSON body"},
                                    "logo": {"type": "string", "format": "binary"},
                                },
                            }
                        },
                    },
                },
                "responses": {
                    "200": {
                        "description": "ZIP of one file per code plus manifest.csv, streamed",
                        "content": {
                            "application/zip": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    **errors,
                },
            }
        },
    }


_TOUCH = {
    "type": ["object", "null"],
    "properties": {
        "start": {"type": "integer"},
        "at": {"type": "string", "format": "date-time"},
        "ref": {"type": ["string", "null"]},
        "click": {"type": ["integer", "null"]},
        "link": {"type": ["string", "null"]},
        "placement": {"type": ["string", "null"]},
        **{name: {"type": ["string", "null"]} for name in links.UTM},
    },
}
_OPTIN_SCHEMAS: dict[str, Any] = {
    "Subscriber": {
        "type": "object",
        "required": ["id", "channel", "messenger", "messenger_user_id", "status"],
        "properties": {
            "id": {"type": "integer"},
            "channel": {"type": "integer"},
            "messenger": {"type": "string"},
            "messenger_user_id": {"type": "string"},
            "name": {"type": ["string", "null"]},
            "language": {"type": ["string", "null"]},
            "status": {"type": "string", "enum": ["subscribed", "unsubscribed"]},
            "status_since": {"type": ["string", "null"], "format": "date-time"},
            "first_seen_at": {"type": "string", "format": "date-time"},
            "last_seen_at": {"type": "string", "format": "date-time"},
            "erased": {"type": "boolean"},
            "first_touch": _TOUCH,
        },
    },
    "ConsentEvent": {
        "type": "object",
        "required": ["id", "kind", "at", "received_at", "method", "evidence"],
        "properties": {
            "id": {"type": "integer"},
            "kind": {"type": "string", "enum": ["opt_in", "opt_out"]},
            "at": {"type": "string", "format": "date-time"},
            "received_at": {"type": "string", "format": "date-time"},
            "method": {"type": "string"},
            "consent_version": {"type": ["string", "null"]},
            "evidence": {"type": "object"},
            "first_touch": _TOUCH,
            "last_touch": _TOUCH,
        },
    },
}


def _optin_paths() -> dict[str, Any]:
    """Reports from bots with their own webhook, subscribers, the ledger, erasure."""
    report: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["messenger", "channel", "user_id", "event_id"],
        "properties": {
            "messenger": {"type": "string", "enum": list(messengers.NAMES)},
            "channel": {"type": "integer", "minimum": 1},
            "user_id": {"type": ["string", "integer"], "minLength": 1, "maxLength": 128},
            "event_id": {"type": ["string", "integer"], "minLength": 1, "maxLength": 190},
            "time": {"type": "string", "format": "date-time"},
            "user_name": {"type": "string", "maxLength": 200},
            "language": {"type": "string", "maxLength": 16},
        },
    }
    start = {
        **report,
        "properties": {
            **report["properties"],
            # Blank or null means "no ref" (surrounding spaces are trimmed).
            "ref": {"type": ["string", "null"], "pattern": "^\\s*([A-Za-z0-9_-]{1,64})?\\s*$"},
            "text": {"type": "string", "maxLength": 4096},
            "subscribed": {"type": "boolean", "default": True},
        },
    }
    answer = {
        "type": "object",
        "properties": {
            "duplicate": {"type": "boolean"},
            "subscriber": {"oneOf": [_ref("Subscriber"), {"type": "null"}]},
            "start": _TOUCH,
        },
    }
    # The handlers read at most 18 digits (a 64-bit id) and refuse longer ones with a 422.
    subscriber_id = _path("id", {"type": "integer", "minimum": 1, "maximum": 10**18 - 1})
    text = {"type": "string", "maxLength": 100}
    when = {"type": "string", "format": "date-time"}
    listing = [
        _query(
            "channel", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}, "only this channel"
        ),
        _query("status", {"type": "string", "enum": ["subscribed", "unsubscribed"]}, "status"),
        _query("source", text, "first-touch source (direct: no click)"),
        _query("campaign", text, "first-touch campaign"),
        _query("since", when, "first seen at or after"),
        _query("until", when, "first seen before"),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size"),
        _query("before", {"type": "integer", "minimum": 1, "maximum": 10**18 - 1}, "cursor"),
    ]
    csv_ok = {
        "description": "The consent ledger, one event per row (cells that a spreadsheet "
        "would run as formulas start with ')",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
    consent_csv = _op(
        "Export the consent ledger as CSV",
        "200",
        {"type": "string"},
        params=[
            _query("channel", {"type": "integer", "minimum": 1, "maximum": 10**9 - 1}, "channel")
        ],
    )
    consent_csv["responses"]["200"] = csv_ok
    reported = _op("Report a start seen by a bot with its own webhook", "201", answer, start)
    withdrawn = _op("Report an opt-out seen by a bot with its own webhook", "201", answer, report)
    for op in (reported, withdrawn):
        op["responses"]["200"] = {
            "description": "Already reported (same event_id)",
            **_json(answer),
        }
    return {
        "/starts": {"post": reported},
        "/optouts": {"post": withdrawn},
        "/subscribers": {
            "get": _op(
                "List subscribers, newest first",
                "200",
                {
                    "type": "object",
                    "properties": {
                        "subscribers": {"type": "array", "items": _ref("Subscriber")},
                        "next_before": {"type": ["integer", "null"]},
                    },
                },
                params=listing,
            )
        },
        "/subscribers/{id}": {
            "get": _op(
                "One subscriber", "200", _ref("Subscriber"), params=[subscriber_id], missing=True
            ),
            "delete": _op(
                "Erase a subscriber's personal data; the consent ledger stays as proof",
                "200",
                {"type": "object"},
                params=[subscriber_id],
                missing=True,
            ),
        },
        "/subscribers/{id}/consent": {
            "get": _op(
                "A subscriber's consent history with evidence and touches",
                "200",
                {
                    "type": "object",
                    "properties": {
                        "subscriber": {"type": "integer"},
                        "events": {"type": "array", "items": _ref("ConsentEvent")},
                    },
                },
                params=[subscriber_id],
                missing=True,
            ),
        },
        "/consent.csv": {"get": consent_csv},
    }


def _widget_paths() -> dict[str, Any]:
    """/widgets: the site widget's config, its embed snippet and its impression counts."""
    langs = {"type": "string", "pattern": "^[a-z]{2}$"}
    text = {"type": "string", "maxLength": widgets.MAX_TEXT}
    globs = {
        "type": ["array", "null"],
        "maxItems": widgets.MAX_GLOBS,
        "items": {"type": "string", "pattern": "^[/*][!-~]*$", "maxLength": widgets.MAX_GLOB},
    }
    props: dict[str, Any] = {
        "name": {"type": ["string", "null"], "maxLength": 100},
        "channels": {
            "type": "array",
            "minItems": 1,
            "maxItems": widgets.MAX_CHANNELS,
            "items": {"type": "integer", "minimum": 1},
            "description": "channel ids in button order; each gets its own tracked link",
        },
        "origins": {
            "type": "array",
            "minItems": 1,
            "maxItems": widgets.MAX_ORIGINS,
            "items": {"type": "string", "examples": ["https://example.org"]},
            "description": "site origins (scheme://host[:port]) allowed to send beacons",
        },
        "layout": {"type": ["string", "null"], "enum": [*widgets.LAYOUTS, None]},
        "position": {"type": ["string", "null"], "enum": [*widgets.POSITIONS, None]},
        "lang": {"type": ["string", "null"], "enum": [*widgets.LANGS, None]},
        "color": {"type": ["string", "null"], "pattern": "^#[0-9A-Fa-f]{6}$"},
        "text_color": {"type": ["string", "null"], "pattern": "^#[0-9A-Fa-f]{6}$"},
        "delay": {"type": ["integer", "null"], "minimum": 0, "maximum": widgets.MAX_DELAY},
        "scroll": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
        "include": globs,
        "exclude": globs,
        "texts": {
            "type": ["object", "null"],
            "propertyNames": langs,
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {key: text for key in widgets.TEXT_KEYS},
            },
            "description": "plain-text overrides per language (never HTML)",
        },
        "consent": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "required": ["version"],
            "properties": {
                "version": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,32}$"},
                "text": {
                    "type": "object",
                    "propertyNames": langs,
                    "additionalProperties": {"type": "string", "maxLength": 500},
                },
            },
        },
        "whatsapp_qr": {"type": "boolean", "description": "desktop QR hand-off for WhatsApp"},
    }
    widget_in = {
        "type": "object",
        "additionalProperties": False,
        "required": ["channels", "origins"],
        "properties": props,
    }
    widget_patch = {**widget_in, "required": []}
    widget_out = {
        "type": "object",
        "required": ["id", "script_url", "snippet", "version"],
        "properties": {
            "id": {"type": "string", "pattern": "^wgt_[0-9A-Za-z]{10}$"},
            "script_url": {"type": "string"},
            "snippet": {"type": "string"},
            "versioned_script_url": {"type": "string"},
            **{k: {k2: v2 for k2, v2 in v.items() if k2 != "minItems"} for k, v in props.items()},
            "links": {"type": "array", "items": {"type": "object"}},
            "csp": {"type": "object"},
            "version": {"type": "integer"},
        },
    }
    wid = _path("id", {"type": "string", "pattern": "^wgt_[0-9A-Za-z]{10}$"})
    return {
        "/widgets": {
            "get": _op(
                "List widgets",
                "200",
                {
                    "type": "object",
                    "properties": {"widgets": {"type": "array", "items": widget_out}},
                },
            ),
            "post": _op("Create a widget and its tracked links", "201", widget_out, widget_in),
        },
        "/widgets/{id}": {
            "parameters": [wid],
            "get": _op("Read a widget", "200", widget_out, missing=True),
            "patch": _op(
                "Change a widget (absent keys stay, null resets)",
                "200",
                widget_out,
                widget_patch,
                missing=True,
            ),
        },
        "/widgets/{id}/stats": {
            "parameters": [wid],
            "get": _op(
                "Widget impressions, QR hand-offs and clicks (humans), by hour buckets",
                "200",
                {"type": "object", "properties": {"rows": {"type": "array"}}},
                params=[
                    _query(
                        "group_by",
                        {"type": "string", "enum": list(widget_events.GROUPS)},
                        "grouping key (default day)",
                    ),
                    _query("from", {"type": "string", "format": "date-time"}, "start, inclusive"),
                    _query("to", {"type": "string", "format": "date-time"}, "end, exclusive"),
                ],
                missing=True,
            ),
        },
    }


def document(base_url: str) -> dict[str, Any]:
    channel_in = {
        "type": "object",
        "additionalProperties": False,
        "required": ["messenger", "handle"],
        "properties": {
            "messenger": {"type": "string", "enum": list(messengers.NAMES)},
            "handle": {"type": "string", "minLength": 1, "maxLength": 200},
            "name": {"type": "string", "maxLength": 100},
            "credentials": {"type": "object", "additionalProperties": {"type": "string"}},
            "relay_url": {"type": ["string", "null"], "format": "uri", "maxLength": 500},
            "welcome_text": {"type": ["string", "null"], "maxLength": 1000},
        },
    }
    placement_in = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "kind": {"type": "string", "enum": list(placements.KINDS)},
            "address": {"type": ["string", "null"], "maxLength": 300},
            "cost": {"type": ["number", "string", "null"], "minimum": 0},
        },
    }
    link_in = {
        "type": "object",
        "additionalProperties": False,
        "required": ["channels"],
        "properties": {
            "channels": {
                "type": "array",
                "minItems": 1,
                "maxItems": links.MAX_CHANNELS,
                "items": {"type": "integer", "minimum": 1},
            },
            **{name: _TEXT100 for name in links.UTM},
            "placement": placement_in,
            "placement_id": {"type": ["integer", "null"], "minimum": 1},
            "text": {"type": ["string", "null"], "maxLength": 500},
            "slug": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{2,31}$"},
            "valid_from": {"type": ["string", "null"], "format": "date-time"},
            "valid_until": {"type": ["string", "null"], "format": "date-time"},
            "disabled": {"type": "boolean"},
            "welcome_text": {"type": ["string", "null"], "maxLength": 1000},
        },
    }
    link_patch = {**link_in, "required": []}
    link_patch["properties"] = {
        k: v
        for k, v in link_in["properties"].items()  # type: ignore[attr-defined]
        if k not in ("slug", "placement")
    }
    link_out = {
        "type": "object",
        "required": ["code", "url", "channels", "version"],
        "properties": {
            "code": {"type": "string"},
            "url": {"type": "string"},
            "qr": {"type": "object"},
            "channels": {"type": "array", "items": {"type": "integer"}},
            **{name: {"type": ["string", "null"]} for name in links.UTM},
            "placement": {"type": ["object", "null"]},
            "text": {"type": ["string", "null"]},
            "valid_from": {"type": ["string", "null"]},
            "valid_until": {"type": ["string", "null"]},
            "disabled": {"type": "boolean"},
            "welcome_text": {"type": ["string", "null"]},
            "version": {"type": "integer"},
            "created_at": {"type": "string"},
            "updated_at": {"type": "string"},
        },
    }
    channel_out = {
        "type": "object",
        "required": ["id", "messenger", "handle", "name", "webhook"],
        "properties": {
            "id": {"type": "integer"},
            "messenger": {"type": "string"},
            "handle": {"type": "string"},
            "name": {"type": "string"},
            "credentials": {"type": "object"},
            "webhook": {"type": "object"},
        },
    }
    code = _path("code", {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"})
    channel_id = _path("id", {"type": "integer", "minimum": 1, "maximum": 10**9 - 1})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "acquisition",
            "version": "1",
            "description": "Tracked links, channels and funnel statistics.",
        },
        "servers": [{"url": f"{base_url}/api/v1"}],
        "security": [{"apiKey": []}],
        "paths": {
            "/channels": {
                "get": _op(
                    "List channels",
                    "200",
                    {
                        "type": "object",
                        "properties": {"channels": {"type": "array", "items": _ref("Channel")}},
                    },
                ),
                "post": _op("Register a channel", "201", _ref("Channel"), channel_in),
            },
            "/channels/{id}": {
                "get": _op(
                    "One channel", "200", _ref("Channel"), params=[channel_id], missing=True
                ),
                "patch": _op(
                    "Change a channel's name, credentials, relay or welcome text",
                    "200",
                    _ref("Channel"),
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            k: v
                            for k, v in channel_in["properties"].items()  # type: ignore[attr-defined]
                            if k not in ("messenger", "handle")
                        },
                    },
                    params=[channel_id],
                    missing=True,
                ),
            },
            "/links": {
                "get": _op(
                    "List links, newest first",
                    "200",
                    {
                        "type": "object",
                        "properties": {
                            "links": {"type": "array", "items": _ref("Link")},
                            "next_before": {"type": ["integer", "null"]},
                        },
                    },
                    params=[
                        _query(
                            "limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size"
                        ),
                        _query(
                            "before",
                            {"type": "integer", "minimum": 0},
                            "cursor: next_before of the previous page",
                        ),
                        _query(
                            "campaign", {"type": "string", "maxLength": 100}, "only this campaign"
                        ),
                    ],
                ),
                "post": _op("Create a tracked link", "201", _ref("Link"), link_in),
            },
            "/links/batch": {
                "post": _op(
                    "Create many links, all or nothing",
                    "201",
                    {
                        "type": "object",
                        "properties": {"links": {"type": "array", "items": _ref("Link")}},
                    },
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["links"],
                        "properties": {
                            "links": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": links.MAX_BATCH,
                                "items": link_in,
                            }
                        },
                    },
                ),
            },
            "/links/{code}": {
                "get": _op("One link", "200", _ref("Link"), params=[code], missing=True),
                "patch": _op(
                    "Edit a link (a new version; history is kept)",
                    "200",
                    _ref("Link"),
                    link_patch,
                    params=[code],
                    missing=True,
                ),
            },
            "/links/{code}/revisions": {
                "get": _op(
                    "Every version of a link",
                    "200",
                    {"type": "object"},
                    params=[code],
                    missing=True,
                ),
            },
            "/placements": {
                "get": _op(
                    "List placements",
                    "200",
                    {"type": "object"},
                    params=[
                        _query(
                            "campaign", {"type": "string", "maxLength": 100}, "only this campaign"
                        )
                    ],
                ),
            },
            "/stats": {
                "get": _op(
                    "Funnel numbers grouped by one key",
                    "200",
                    {
                        "type": "object",
                        "properties": {"rows": {"type": "array", "items": {"type": "object"}}},
                    },
                    params=[
                        _query(
                            "group_by",
                            {"type": "string", "enum": list(stats.GROUPS)},
                            "grouping key",
                        ),
                        _query(
                            "from", {"type": "string", "format": "date-time"}, "start, inclusive"
                        ),
                        _query("to", {"type": "string", "format": "date-time"}, "end, exclusive"),
                        _query(
                            "campaign", {"type": "string", "maxLength": 100}, "only this campaign"
                        ),
                        _query(
                            "attribution",
                            {"type": "string", "enum": list(stats.ATTRIBUTIONS)},
                            "opt-ins by first touch (default) or last touch",
                        ),
                    ],
                ),
            },
            **_qr_paths(code, link_in),
            **_widget_paths(),
            **_optin_paths(),
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Link": link_out,
                "Channel": channel_out,
                **_OPTIN_SCHEMAS,
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["field", "message"],
                                "properties": {
                                    "field": {"type": "string"},
                                    "message": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            },
        },
    }
