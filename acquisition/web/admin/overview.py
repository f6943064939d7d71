"""The dashboard: a period's funnel against the previous period, clicks and opt-ins per day,
and a sortable breakdown with drill-down (campaign → placements → links); CSV of each table,
and the live refresh the page polls while the period includes today."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from acquisition import dashboard, fields, rollups
from acquisition.errors import Invalid
from acquisition.models import Channel, Placement
from acquisition.models.accounts import User
from acquisition.web.admin import charts, pages, security
from acquisition.web.admin.i18n import Formats

DEFAULT_DAYS = 30
MAX_DAYS = 731
PRESETS = (7, 30, 90)
# The groups a marketer picks from, in the order of the tabs.
TABS = ("source", "campaign", "placement", "link", "channel", "messenger", "medium", "day")
COLUMNS = (
    "label",
    "impressions",
    "clicks",
    "starts",
    "optins",
    "optouts",
    "conversion",
    "cost",
    "cost_per_subscriber",
    "bots",
)
# Clicking a row of one group opens the next level, filtered to that row.
DRILL = {"campaign": "placement", "placement": "link", "source": "campaign", "channel": "source"}
POLL_SECONDS = 10


@dataclass
class View:
    """What the dashboard was asked for, parsed from the query (bad values fall back)."""

    since: date
    until: date  # inclusive, as people read a period
    group: str = "source"
    sort: str = "optins"
    desc: bool = True
    campaign: str | None = None
    source: str | None = None
    channel: int | None = None
    placement: int | None = None
    attribution: str = "first"
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def filters(self) -> dashboard.Filters:
        return dashboard.Filters(
            since=self.since,
            until=self.until + timedelta(days=1),
            campaign=self.campaign,
            source=self.source,
            channel_id=self.channel,
            placement_id=self.placement,
            attribution="last" if self.attribution == "last" else "first",
        )

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    @property
    def live(self) -> bool:
        return self.until >= today()

    def query(self, **changes: Any) -> str:
        """This view's query string with some parameters changed (None removes one)."""
        params: dict[str, Any] = {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "group": self.group,
            "sort": self.sort,
            "dir": "desc" if self.desc else "asc",
            "campaign": self.campaign,
            "source": self.source,
            "channel": self.channel,
            "placement": self.placement,
            "attribution": self.attribution if self.attribution != "first" else None,
        }
        params.update(changes)
        return urlencode({k: v for k, v in params.items() if v not in (None, "")})


def today() -> date:
    return datetime.now(UTC).date()


def parse_view(params: Any) -> View:
    end = today()
    view = View(since=end - timedelta(days=DEFAULT_DAYS - 1), until=end)
    problems = fields.Problems()
    since = problems.take(_day, params, "since")
    until = problems.take(_day, params, "until")
    if until is not None:
        view.until = until
    if since is not None:
        view.since = since
    elif until is not None:
        view.since = view.until - timedelta(days=DEFAULT_DAYS - 1)
    if view.since > view.until:
        problems.add("since", "must not be after the last day")
        view.since, view.until = end - timedelta(days=DEFAULT_DAYS - 1), end
    elif view.days > MAX_DAYS:
        problems.add("since", f"a period may span at most {MAX_DAYS} days")
        view.since = view.until - timedelta(days=MAX_DAYS - 1)
    group = params.get("group", "source")
    if group in dashboard.GROUPS:
        view.group = group
    else:
        problems.add("group", "unknown grouping")
    sort = params.get("sort", "optins")
    view.sort = sort if sort in COLUMNS else "optins"
    view.desc = params.get("dir", "desc") != "asc"
    view.campaign = problems.take(fields.text, params, "campaign", max_length=100)
    view.source = problems.take(fields.text, params, "source", max_length=100)
    view.channel = problems.take(_id, params, "channel")
    view.placement = problems.take(_id, params, "placement")
    view.attribution = "last" if params.get("attribution") == "last" else "first"
    view.errors = pages.field_errors(problems.errors)
    return view


def _day(params: Any, name: str) -> date | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(str(raw)[:10])
    except ValueError:
        raise Invalid("must be a date such as 2026-11-01", field=name) from None


def _id(params: Any, name: str) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    if not str(raw).isdecimal() or len(str(raw)) > 9:
        raise Invalid("must be a numeric id", field=name)
    return int(raw)


@dataclass
class Data:
    current: dashboard.Funnel
    previous: dashboard.Funnel
    points: list[dashboard.Point]
    rows: list[dashboard.Row]
    channels: list[tuple[int, str, str]]
    placement_name: str | None
    channel_name: str | None
    refreshed: datetime | None = None


def load(session: Session, view: View) -> Data:
    filters = view.filters
    current, previous = dashboard.compare(session, filters)
    rows = dashboard.breakdown(session, filters, view.group)
    channels = [
        (c.id, c.name, c.messenger)
        for c in session.scalars(select(Channel).order_by(Channel.name, Channel.id))
    ]
    placement = session.get(Placement, view.placement) if view.placement else None
    return Data(
        current=current,
        previous=previous,
        points=dashboard.series(session, filters),
        rows=sort_rows(rows, view.sort, view.desc),
        channels=channels,
        placement_name=placement.name if placement else None,
        channel_name=next((name for cid, name, _ in channels if cid == view.channel), None),
        refreshed=rollups.refreshed_at(session),
    )


def sort_rows(rows: list[dashboard.Row], column: str, desc: bool) -> list[dashboard.Row]:
    def key(row: dashboard.Row) -> Any:
        if column == "label":
            return row.label.lower()
        if column == "bots":
            return row.bots + row.previews
        return getattr(row, column)

    known = [row for row in rows if key(row) is not None]
    unknown = [row for row in rows if key(row) is None]  # no cost: always last
    return sorted(known, key=key, reverse=desc) + unknown


def drill_url(view: View, row: dashboard.Row) -> str | None:
    if row.key is None:
        return None
    if view.group == "link":
        return f"/admin/links/{row.label}"
    if view.group == "day":
        day = str(row.key)
        return "/admin/?" + view.query(since=day, until=day, group="source")
    target = DRILL.get(view.group)
    if target is None:
        return None
    filter_name = {"campaign": "campaign", "placement": "placement", "source": "source"}.get(
        view.group, "channel"
    )
    return "/admin/?" + view.query(**{filter_name: row.key, "group": target, "sort": "optins"})


def charts_for(view: View, data: Data, fmt: Formats, t: Any) -> dict[str, Any]:
    period = f"{fmt.full_day(view.since)} – {fmt.full_day(view.until)}"
    result = {}
    for name, title, unit, css in (
        ("clicks", t("Clicks per day"), t("clicks"), "s-clicks"),
        ("optins", t("Opt-ins per day"), t("opt-ins"), "s-optins"),
    ):
        points = [(p.day, getattr(p, name)) for p in data.points]
        total = sum(v for _, v in points)
        peak = max(points, key=lambda p: p[1]) if points else None
        describe = t(
            "{title}, {period}: {total} in total.", title=title, period=period, total=fmt.num(total)
        )
        if peak and peak[1]:
            describe += " " + t(
                "Peak: {value} on {day}.", value=fmt.num(peak[1]), day=fmt.day(peak[0])
            )
        result[name] = charts.bars(
            points,
            ident=f"chart-{name}",
            title=title,
            unit=unit,
            series_class=css,
            fmt=fmt,
            describe=describe,
        )
    return result


def _values(request: Request, view: View, data: Data) -> dict[str, Any]:
    ctx = pages.context(request)
    return {
        "view": view,
        "data": data,
        "charts": charts_for(view, data, ctx["fmt"], ctx["t"]),
        "tabs": TABS,
        "presets": [(days, today() - timedelta(days=days - 1)) for days in PRESETS],
        "drill_url": lambda row: drill_url(view, row),
        "poll": POLL_SECONDS,
        "today": today(),
    }


@pages.page
async def show(request: Request, user: User) -> Response:
    view = parse_view(request.query_params)
    data = await pages.reading(request, lambda s: load(s, view))
    status = 400 if view.errors else 200
    return pages.render(
        request, "admin/dashboard.html", status=status, **_values(request, view, data)
    )


@pages.page
async def live(request: Request, user: User) -> Response:
    """The parts of the page that change, as HTML, for the page's poll (no reload)."""
    view = parse_view(request.query_params)
    data = await pages.reading(request, lambda s: load(s, view))
    values = {**pages.context(request), **_values(request, view, data)}
    sections = {
        name: pages.templates.get_template(f"admin/dashboard/_{name}.html").render(values)
        for name in ("funnel", "charts", "table")
    }
    return JSONResponse(
        {"sections": sections, "live": view.live, "at": datetime.now(UTC).isoformat()},
        headers=security.HEADERS,
    )


@pages.page
async def export(request: Request, user: User) -> Response:
    """The breakdown (or, with table=days, the series) as CSV."""
    view = parse_view(request.query_params)
    table = request.query_params.get("table", "breakdown")
    name = f"{view.since.isoformat()}_{view.until.isoformat()}"
    if table == "days":
        points = await pages.reading(request, lambda s: dashboard.series(s, view.filters))
        return pages.csv_response(
            f"days_{name}.csv",
            ("day", "impressions", "clicks", "starts", "optins", "optouts"),
            [(p.day, p.impressions, p.clicks, p.starts, p.optins, p.optouts) for p in points],
        )
    found = await pages.reading(
        request, lambda s: dashboard.breakdown(s, view.filters, view.group, limit=10_000)
    )
    rows = sort_rows(found, view.sort, view.desc)
    header = (
        view.group,
        "key",
        "impressions",
        "clicks",
        "previews",
        "bots",
        "starts",
        "optins",
        "optouts",
        "conversion",
        "cost",
        "cost_per_subscriber",
        "still_subscribed_7d",
        "still_subscribed_30d",
    )
    return pages.csv_response(
        f"{view.group}_{name}.csv",
        header,
        [
            (
                r.label,
                r.key,
                r.impressions,
                r.clicks,
                r.previews,
                r.bots,
                r.starts,
                r.optins,
                r.optouts,
                r.conversion,
                r.cost,
                r.cost_per_subscriber,
                r.still_subscribed_7d,
                r.still_subscribed_30d,
            )
            for r in rows
        ],
    )
