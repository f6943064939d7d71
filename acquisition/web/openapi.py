"""The OpenAPI 3.1 document of /api/v1, written by hand next to the handlers it describes."""

from __future__ import annotations

from typing import Any

from acquisition import links, messengers, placements, stats

_TEXT100 = {"type": ["string", "null"], "maxLength": 100}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": _ref("Problem")}}}


ERRORS = {
    "400": _problem("The body is not JSON or has the wrong content type"),
    "401": _problem("Missing, invalid or revoked API key"),
    "413": _problem("The body is too large"),
    "422": _problem("A field is invalid; `errors` names each one"),
    "429": _problem("Too many requests"),
    "503": _problem("The database is unavailable; retry after the Retry-After seconds"),
}


def _op(summary: str, ok: str, schema: dict[str, Any], body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None, missing: bool = False) -> dict[str, Any]:
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
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def _path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


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
            "channels": {"type": "array", "minItems": 1, "maxItems": links.MAX_CHANNELS,
                         "items": {"type": "integer", "minimum": 1}},
            **{name: _TEXT100 for name in links.UTM},
            "placement": placement_in,
            "placement_id": {"type": ["integer", "null"], "minimum": 1},
            "text": {"type": ["string", "null"], "maxLength": 500},
            "slug": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{2,31}$"},
            "valid_from": {"type": ["string", "null"], "format": "date-time"},
            "valid_until": {"type": ["string", "null"], "format": "date-time"},
            "disabled": {"type": "boolean"},
        },
    }
    link_patch = {**link_in, "required": []}
    link_patch["properties"] = {k: v for k, v in link_in["properties"].items()  # type: ignore[attr-defined]
                                if k not in ("slug", "placement")}
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
    channel_id = _path("id", {"type": "integer", "minimum": 1})
    return {
        "openapi": "3.1.0",
        "info": {"title": "acquisition", "version": "1",
                 "description": "Tracked links, channels and funnel statistics."},
        "servers": [{"url": f"{base_url}/api/v1"}],
        "security": [{"apiKey": []}],
        "paths": {
            "/channels": {
                "get": _op("List channels", "200", {"type": "object", "properties": {
                    "channels": {"type": "array", "items": _ref("Channel")}}}),
                "post": _op("Register a channel", "201", _ref("Channel"), channel_in),
            },
            "/channels/{id}": {
                "get": _op("One channel", "200", _ref("Channel"), params=[channel_id],
                           missing=True),
                "patch": _op("Change a channel's name, credentials, relay or welcome text",
                             "200", _ref("Channel"),
                             {"type": "object", "additionalProperties": False, "properties": {
                                 k: v for k, v in channel_in["properties"].items()  # type: ignore[attr-defined]
                                 if k not in ("messenger", "handle")}},
                             params=[channel_id], missing=True),
            },
            "/links": {
                "get": _op("List links, newest first", "200", {"type": "object", "properties": {
                    "links": {"type": "array", "items": _ref("Link")},
                    "next_before": {"type": ["integer", "null"]}}},
                    params=[_query("limit", {"type": "integer", "minimum": 1, "maximum": 500},
                                   "page size"),
                            _query("before", {"type": "integer", "minimum": 0},
                                   "cursor: next_before of the previous page"),
                            _query("campaign", {"type": "string", "maxLength": 100},
                                   "only this campaign")]),
                "post": _op("Create a tracked link", "201", _ref("Link"), link_in),
            },
            "/links/batch": {
                "post": _op("Create many links, all or nothing", "201",
                            {"type": "object", "properties": {
                                "links": {"type": "array", "items": _ref("Link")}}},
                            {"type": "object", "additionalProperties": False,
                             "required": ["links"], "properties": {
                                 "links": {"type": "array", "minItems": 1,
                                           "maxItems": links.MAX_BATCH, "items": link_in}}}),
            },
            "/links/{code}": {
                "get": _op("One link", "200", _ref("Link"), params=[code], missing=True),
                "patch": _op("Edit a link (a new version; history is kept)", "200", _ref("Link"),
                             link_patch, params=[code], missing=True),
            },
            "/links/{code}/revisions": {
                "get": _op("Every version of a link", "200", {"type": "object"}, params=[code],
                           missing=True),
            },
            "/placements": {
                "get": _op("List placements", "200", {"type": "object"},
                           params=[_query("campaign", {"type": "string", "maxLength": 100},
                                          "only this campaign")]),
            },
            "/stats": {
                "get": _op("Funnel numbers grouped by one key", "200", {"type": "object",
                           "properties": {"rows": {"type": "array",
                                                   "items": {"type": "object"}}}},
                           params=[_query("group_by", {"type": "string", "enum": list(stats.GROUPS)},
                                          "grouping key"),
                                   _query("from", {"type": "string", "format": "date-time"},
                                          "start, inclusive"),
                                   _query("to", {"type": "string", "format": "date-time"},
                                          "end, exclusive"),
                                   _query("campaign", {"type": "string", "maxLength": 100},
                                          "only this campaign")]),
            },
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Link": link_out,
                "Channel": channel_out,
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "errors": {"type": "array", "items": {
                            "type": "object", "required": ["field", "message"],
                            "properties": {"field": {"type": "string"},
                                           "message": {"type": "string"}}}},
                    },
                },
            },
        },
    }
