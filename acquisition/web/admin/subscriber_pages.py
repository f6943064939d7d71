"""Subscribers: browse and filter (channel, status, source), one person's consent history,
exports (the list, the consent ledger), and erasure behind a confirmation step."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from acquisition import channels, subscribers
from acquisition.errors import Invalid, NotFound
from acquisition.models.accounts import User
from acquisition.web.admin import pages

FILTERS = ("channel", "status", "source", "campaign")
EXPORT_MAX = 100_000
LIST_COLUMNS = (
    "id",
    "channel",
    "messenger",
    "messenger_user_id",
    "name",
    "language",
    "status",
    "status_since",
    "first_seen_at",
    "last_seen_at",
    "erased",
    "source",
    "medium",
    "campaign",
    "placement",
    "link",
)


def _query(params: Any, limit: int = 50) -> tuple[subscribers.SubscriberQuery, dict[str, str]]:
    wanted = {k: params[k] for k in (*FILTERS, "before") if params.get(k)}
    wanted["limit"] = str(limit)
    try:
        return subscribers.parse_query(wanted), {}
    except Invalid as error:
        return subscribers.SubscriberQuery(limit=limit), pages.field_errors(error.errors)


@pages.page
async def index(request: Request, user: User) -> Response:
    query, errors = _query(request.query_params)

    def work(session: Session) -> tuple[list[dict[str, Any]], list[tuple[int, str, str]]]:
        found = subscribers.page(session, query)
        known = [(c.id, c.name, c.messenger) for c in channels.list_all(session)]
        return found, known

    rows, known = await pages.reading(request, work)
    filters = {k: request.query_params.get(k, "") for k in FILTERS}
    more = rows[-1]["id"] if len(rows) == query.limit and rows else None
    return pages.render(
        request,
        "admin/subscribers.html",
        status=400 if errors else 200,
        rows=rows,
        channels=known,
        filters=filters,
        errors=errors,
        more=more,
        statuses=subscribers.STATUSES,
    )


@pages.page
async def export(request: Request, user: User) -> Response:
    """The filtered list as CSV (identifiers included: this is what an export is for)."""
    query, _errors = _query(request.query_params, limit=500)

    def work(session: Session) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        current = query
        while len(rows) < EXPORT_MAX:
            batch = subscribers.page(session, current)
            for item in batch:
                touch = item["first_touch"] or {}
                rows.append(
                    (
                        *(item[k] for k in LIST_COLUMNS[:11]),
                        *(
                            touch.get(k)
                            for k in ("source", "medium", "campaign", "placement", "link")
                        ),
                    )
                )
            if len(batch) < current.limit:
                break
            current = replace(current, before=batch[-1]["id"])
        return rows

    rows = await pages.reading(request, work)
    return pages.csv_response("subscribers.csv", LIST_COLUMNS, rows)


@pages.page
async def ledger(request: Request, user: User) -> Response:
    """The consent ledger (every opt-in and opt-out with its evidence) as CSV."""
    raw = request.query_params.get("channel", "")
    channel = int(raw) if raw.isdecimal() and len(raw) < 10 else None

    def work(session: Session) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        after = 0
        while len(rows) < 10 * EXPORT_MAX:
            batch = subscribers.ledger_rows(session, channel, after)
            rows.extend(batch)
            if not batch:
                break
            after = batch[-1][0]
        return rows

    rows = await pages.reading(request, work)
    return pages.csv_response("consent.csv", subscribers.CSV_COLUMNS, rows)


def _path_id(request: Request) -> int | None:
    raw = request.path_params["id"]
    return int(raw) if raw.isdecimal() and len(raw) < 19 else None


async def _person(request: Request) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    subscriber_id = _path_id(request)
    if subscriber_id is None:
        return None

    def work(session: Session) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        try:
            return subscribers.one(session, subscriber_id), subscribers.history(
                session, subscriber_id
            )
        except NotFound:
            return None

    return await pages.reading(request, work)


def _missing(request: Request) -> Response:
    return pages.render(request, "admin/error.html", status=404, message="No such subscriber.")


@pages.page
async def detail(request: Request, user: User) -> Response:
    found = await _person(request)
    if found is None:
        return _missing(request)
    person, history = found
    return pages.render(request, "admin/subscriber.html", person=person, history=history)


@pages.page
async def erase_form(request: Request, user: User) -> Response:
    found = await _person(request)
    if found is None:
        return _missing(request)
    return pages.render(request, "admin/subscriber_erase.html", person=found[0], error=None)


@pages.page
async def erase(request: Request, user: User) -> Response:
    found = await _person(request)
    if found is None:
        return _missing(request)
    person = found[0]
    form = await pages.read_form(request)
    if form.get("confirm") != "erase":
        return pages.render(
            request,
            "admin/subscriber_erase.html",
            status=422,
            person=person,
            error="Tick the box to confirm the erasure.",
        )
    secret = request.app.state.services.settings.secret_key

    def work(session: Session) -> None:
        subscribers.erase(session, subscribers.get(session, person["id"]), secret)

    await pages.writing(request, work)
    pages.flash(request, "The subscriber's identifiers were erased; the consent proof is kept.")
    return pages.redirect(f"/admin/subscribers/{person['id']}")
