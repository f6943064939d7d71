"""Links: the list (with CSV), the link builder (with a placement), and bulk links from a
pasted table of placements. A link's own page, with the QR designer, is in qr_pages.py."""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from acquisition import channels, links, placements
from acquisition.errors import AcquisitionError, FieldError, Invalid
from acquisition.models import Link
from acquisition.models.accounts import User
from acquisition.web.admin import i18n, pages

PAGE_SIZE = 50
UTM_FIELDS = ("campaign", "source", "medium", "content", "term")
SHARED = ("channels", *UTM_FIELDS)
BULK_COLUMNS = ("name", "kind", "address", "cost")


def _money(raw: str | None) -> str | None:
    """Costs as people type them: 1500, 1 500, 1500,50 (a decimal comma)."""
    if raw is None:
        return None
    return raw.replace("\u00a0", "").replace(" ", "").replace(",", ".")


def link_row(link: Link, base: str) -> dict[str, Any]:
    return {
        **links.public(link, base),
        "channel_names": [t.channel.name for t in link.targets],
        "messengers": [t.channel.messenger for t in link.targets],
    }


# --- list -----------------------------------------------------------------------------------


@pages.page
async def index(request: Request, user: User) -> Response:
    base = request.app.state.services.settings.base_url
    params = request.query_params
    campaign = (params.get("campaign") or "").strip()[:100] or None
    raw_before = params.get("before", "")
    before = int(raw_before) if raw_before.isdecimal() and len(raw_before) < 10 else None

    def work(session: Session) -> list[dict[str, Any]]:
        return [link_row(ln, base) for ln in links.page(session, PAGE_SIZE, before, campaign)]

    rows = await pages.reading(request, work)
    more = rows[-1]["id"] if len(rows) == PAGE_SIZE and rows else None
    return pages.render(request, "admin/links.html", rows=rows, campaign=campaign, more=more)


@pages.page
async def export(request: Request, user: User) -> Response:
    base = request.app.state.services.settings.base_url
    campaign = (request.query_params.get("campaign") or "").strip()[:100] or None

    def work(session: Session) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        before = None
        while len(rows) < 100_000:
            batch = links.page(session, 1000, before, campaign)
            for ln in batch:
                place = ln.placement
                rows.append(
                    (
                        ln.code,
                        links.short_url(base, ln.code),
                        *(getattr(ln, name) for name in UTM_FIELDS),
                        place.name if place else None,
                        place.kind if place else None,
                        place.address if place else None,
                        place.cost if place else None,
                        " ".join(str(t.channel_id) for t in ln.targets),
                        ln.disabled,
                        ln.created_at,
                    )
                )
            if len(batch) < 1000:
                return rows
            before = batch[-1].id
        return rows

    rows = await pages.reading(request, work)
    header = (
        "code",
        "url",
        *UTM_FIELDS,
        "placement",
        "kind",
        "address",
        "cost",
        "channels",
        "disabled",
        "created_at",
    )
    return pages.csv_response(f"links-{campaign or 'all'}.csv", header, rows)


# --- the link builder -------------------------------------------------------------------------


def _choices(session: Session) -> dict[str, Any]:
    return {
        "channels": [(c.id, c.name, c.messenger) for c in channels.list_all(session)],
        "placement_options": [
            (p.id, f"{p.name} · {p.campaign}" if p.campaign else p.name)
            for p in placements.list_all(session)[:500]
        ],
    }


async def choices(request: Request) -> dict[str, Any]:
    t = i18n.translator(i18n.negotiate(request))
    found = await pages.reading(request, _choices)
    found["kind_options"] = [(kind, t(f"kind:{kind}")) for kind in placements.KINDS]
    return found


async def _builder(request: Request, form: pages.Form, status: int = 200) -> Response:
    choices_ = await choices(request)
    return pages.render(request, "admin/link_new.html", status=status, form=form, **choices_)


@pages.page
async def new(request: Request, user: User) -> Response:
    values: dict[str, Any] = {"placement.kind": "other"}
    for name in (*UTM_FIELDS, "placement_id"):
        if request.query_params.get(name):
            values[name] = request.query_params[name][:100]
    channel = request.query_params.get("channel")
    if channel and channel.isdecimal():
        values["channels"] = [int(channel)]
    return await _builder(request, pages.Form(values=values))


def link_data(form: FormData) -> dict[str, Any]:
    """The form as the API's link body (links.parse names the same fields)."""
    data: dict[str, Any] = {"channels": pages.id_list(form, "channels")}
    for name in UTM_FIELDS:
        data[name] = pages.text_value(form, name, 500)
    data["placement_id"] = pages.id_value(form, "placement_id")
    place = pages.text_value(form, "placement.name", 1000)
    if place is not None:
        data["placement"] = {
            "name": place,
            "kind": pages.text_value(form, "placement.kind", 50) or "other",
            "address": pages.text_value(form, "placement.address", 1000),
            "cost": _money(pages.text_value(form, "placement.cost", 100)),
        }
    data["text"] = pages.text_value(form, "text", 2000)
    data["welcome_text"] = pages.text_value(form, "welcome_text", 4000)
    slug = pages.text_value(form, "slug", 100)
    data["slug"] = slug.strip() if slug else None
    return {key: value for key, value in data.items() if value is not None}


def _shown(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = pages.values_of(
        form,
        [
            *UTM_FIELDS,
            "placement_id",
            "placement.name",
            "placement.kind",
            "placement.address",
            "placement.cost",
            "text",
            "welcome_text",
            "slug",
        ],
    )
    values["channels"] = pages.id_list(form, "channels")
    return values


@pages.page
async def create(request: Request, user: User) -> Response:
    form = await pages.read_form(request)
    data = link_data(form)
    try:
        code = await pages.writing(request, lambda s: links.create(s, links.parse(data)).code)
    except AcquisitionError as error:
        return await _builder(request, pages.Form(values=_shown(form)).fail(error), 422)
    pages.flash(request, "Link created.")
    return pages.redirect(f"/admin/links/{code}")


# --- bulk links from a pasted table -----------------------------------------------------------


def parse_table(text: str) -> list[list[str]]:
    """Rows of a table pasted from a spreadsheet (tabs), or typed as CSV (`;` or `,`); quotes
    are honoured, so an address may hold the separator. A header row is skipped."""
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines:
        return []
    first = lines[0]
    delimiter = "\t" if "\t" in first else ";" if ";" in first else ","
    rows = [
        [cell.strip() for cell in row]
        for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter)
    ]
    if (
        rows
        and rows[0]
        and rows[0][0].strip().lower() in ("name", "название", "placement", "размещение")
    ):
        rows = rows[1:]
    return rows


def bulk_data(form: FormData) -> tuple[dict[str, Any], list[FieldError]]:
    """The batch body for links.parse_batch, and the problems of the table itself."""
    shared: dict[str, Any] = {"channels": pages.id_list(form, "channels")}
    for name in UTM_FIELDS:
        value = pages.text_value(form, name, 500)
        if value is not None:
            shared[name] = value
    problems: list[FieldError] = []
    items = []
    rows = parse_table(pages.text_value(form, "rows", 400_000) or "")
    if not rows:
        problems.append(FieldError("rows", "paste at least one line: name, kind, address, cost"))
    if len(rows) > links.MAX_BATCH:
        problems.append(FieldError("rows", f"at most {links.MAX_BATCH} lines at once"))
        rows = rows[: links.MAX_BATCH]
    for i, row in enumerate(rows):
        if len(row) > len(BULK_COLUMNS):
            problems.append(FieldError(f"links.{i}.placement", "has more than 4 columns"))
        cells = dict(zip(BULK_COLUMNS, [*row, "", "", "", ""], strict=False))
        placement = {
            "name": cells["name"] or None,
            "kind": cells["kind"].lower() or "other",
            "address": cells["address"] or None,
            "cost": _money(cells["cost"] or None),
        }
        items.append({**shared, "placement": placement})
    return {"links": items}, problems


def bulk_errors(errors: list[FieldError]) -> tuple[dict[str, str], list[tuple[int, str, str]]]:
    """Problems of the shared fields (shown once at the field) and of each line (1-based)."""
    shared: dict[str, str] = {}
    lines: list[tuple[int, str, str]] = []
    for problem in errors:
        parts = problem.field.split(".")
        if parts[0] == "links" and len(parts) >= 3 and parts[1].isdecimal():
            name = ".".join(parts[2:])
            top = parts[2]
            if top in SHARED:
                shared.setdefault(top, problem.message)
            else:
                column = name.removeprefix("placement.")
                lines.append((int(parts[1]) + 1, column, problem.message))
        else:
            shared.setdefault(problem.field, problem.message)
    seen = set()
    unique = []
    for item in sorted(lines):
        if item not in seen:
            seen.add(item)
            unique.append(item)
    return shared, unique


async def _bulk_page(
    request: Request, form: pages.Form, status: int = 200, **extra: Any
) -> Response:
    found = await choices(request)
    return pages.render(
        request, "admin/links_bulk.html", status=status, form=form, **found, **extra
    )


@pages.page
async def bulk_form(request: Request, user: User) -> Response:
    return await _bulk_page(request, pages.Form(), line_errors=[], created=None)


@pages.page
async def bulk_create(request: Request, user: User) -> Response:
    form = await pages.read_form(request)
    body, table_problems = bulk_data(form)
    base = request.app.state.services.settings.base_url

    def work(session: Session) -> list[dict[str, Any]]:
        specs, errors = links.parse_batch(body) if body["links"] else ([], [])
        whole = [p for p in table_problems if p.field == "rows"]
        if whole:
            raise Invalid(whole[0].message, errors=[*whole, *errors])
        lines = [p for p in table_problems if p.field != "rows"]
        created = links.create_many(session, specs, [*lines, *errors])
        return [link_row(ln, base) for ln in created]

    shown = pages.Form(values={**_shown(form), "rows": form.get("rows") or ""})
    try:
        created = await pages.writing(request, work)
    except AcquisitionError as error:
        shared, line_errors = bulk_errors(error.errors)
        shown.errors = shared
        shown.summary = error.message
        return await _bulk_page(request, shown, 422, line_errors=line_errors, created=None)
    return await _bulk_page(request, pages.Form(), 201, line_errors=[], created=created)
