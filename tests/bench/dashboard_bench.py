"""Dashboard at scale: millions of clicks, the daily rollup rebuilt and refreshed, every
dashboard query timed on PostgreSQL and SQLite side by side.

Run:  .venv/bin/python tests/bench/dashboard_bench.py [--clicks 5000000] [--optins 200000]
      [--db postgresql,sqlite] [--runs 5] [--keep]
PostgreSQL at $ACQUISITION_TEST_POSTGRES_URL (default postgres@127.0.0.1:5432): the script
creates (and at the end drops, unless --keep) a scratch database `acq_dash_bench`. SQLite goes
to a temporary file. The same rows, generated once per day of data with a fixed seed, go into
both: COPY on PostgreSQL, executemany in one transaction per day on SQLite, with the clicks
indexes dropped during the load and built again after it (as a bulk import would).

The data: ~90 days ending now, ~200 links on ~50 placements and 5 channels; about 85% of the
visits are human clicks, the rest preview fetches and bots; today holds 2% of the clicks
(100,000 of 5 million), each earlier day an equal share of the rest. A human click is followed
by a start now and then, which mostly opts the person in (some people come back through
another link and opt in again, a fifth of them opt out within 40 days).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from acquisition import dashboard, rollups  # noqa: E402
from acquisition.config import Settings  # noqa: E402
from acquisition.db import Database, connect, migrate  # noqa: E402
from acquisition.models import DailyStat  # noqa: E402

POSTGRES_URL = os.environ.get(
    "ACQUISITION_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BENCH_DB = "acq_dash_bench"
MESSENGERS = ("telegram", "whatsapp", "viber", "vk", "max")
SOURCES = ("yandex", "google", "vk", "telegram", "flyer", "billboard", "site", "email", "tiktok")
MEDIUMS = ("cpc", "social", "print", "outdoor", "email")
CAMPAIGNS = tuple(f"campaign-{n:02d}" for n in range(12))
CONTENTS = ("banner-a", "banner-b", "video", None)
PAGE_SOURCES = ("newsletter", "blog", "partner", None)
CLICK_COLUMNS = [
    "id",
    "link_id",
    "channel_id",
    "ref",
    "at",
    "visitor",
    "device",
    "via",
    "link_version",
    "source",
    "medium",
    "campaign",
    "content",
    "widget",
]
TABLE_COLUMNS = {
    "subscribers": ["id", "channel_id", "messenger_user_id", "first_seen_at", "last_seen_at"],
    "webhook_events": (
        [
            "id",
            "channel_id",
            "event_id",
            "event_type",
            "delivery_id",
            "subscriber_id",
            "at",
            "received_at",
        ]
    ),
    "starts": [
        "id",
        "channel_id",
        "subscriber_id",
        "webhook_event_id",
        "ref",
        "click_id",
        "link_id",
        "placement_id",
        "source",
        "medium",
        "campaign",
        "content",
        "at",
        "received_at",
    ],
    "consent_events": [
        "id",
        "channel_id",
        "subscriber_id",
        "kind",
        "method",
        "at",
        "received_at",
        "webhook_event_id",
        "first_start_id",
        "last_start_id",
    ],
    "clicks": CLICK_COLUMNS,
}


# the data ----------------------------------------------------------------------------------


@dataclass
class LinkSpec:
    id: int
    channels: list[int]
    placement: int | None
    utm: tuple[str | None, str | None, str | None, str | None]


@dataclass
class Person:
    id: int
    channel: int
    first_start: int
    last_start: int


@dataclass
class Generator:
    """Deterministic rows, one day at a time, in the same shape for both engines."""

    clicks: int
    optins: int
    days: int
    now: datetime
    rng: random.Random = field(default_factory=lambda: random.Random(20261127))
    links: list[LinkSpec] = field(default_factory=list)
    people: dict[int, list[Person]] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    optin_count: int = 0

    def next_id(self, table: str) -> int:
        self.ids[table] = self.ids.get(table, 0) + 1
        return self.ids[table]

    def dimensions(self) -> dict[str, list[tuple[Any, ...]]]:
        rng = self.rng
        created = _stamp(self.now - timedelta(days=self.days + 1))
        channels = [
            (n + 1, messenger, f"shop_{messenger}", f"Shop {messenger}", "{}", created)
            for n, messenger in enumerate(MESSENGERS)
        ]
        placements = [
            (
                n + 1,
                f"Placement {n + 1:02d}",
                rng.choice(["web", "ad", "print", "outdoor", "social"]),
                f"{rng.randrange(50, 5000)}.00" if n % 5 < 3 else None,
                created,
            )
            for n in range(50)
        ]
        links = []
        for n in range(200):
            targets = [rng.randrange(1, 6)]
            if n % 10 == 0:
                targets.append(targets[0] % 5 + 1)
            placement = rng.randrange(1, 51) if n % 5 else None
            utm = (
                rng.choice(SOURCES),
                rng.choice(MEDIUMS),
                rng.choice(CAMPAIGNS),
                rng.choice(CONTENTS),
            )
            self.links.append(LinkSpec(n + 1, targets, placement, utm))
            links.append((n + 1, f"L{n + 1:06d}", *utm[:3], utm[3], placement, created))
        deliveries = [(c, c, "webhook", created, "{}", f"{c:064x}") for c in range(1, 6)]
        self.people = {c: [] for c in range(1, 6)}
        return {
            "channels": channels,
            "placements": placements,
            "links": links,
            "link_channels": [(s.id, c, i) for s in self.links for i, c in enumerate(s.channels)],
            "webhook_deliveries": deliveries,
        }

    def day_rows(self) -> Iterator[tuple[date, dict[str, list[tuple[Any, ...]]]]]:
        today = self.now.date()
        first = today - timedelta(days=self.days - 1)
        today_clicks = max(self.clicks // 50, 1)
        per_day = (self.clicks - today_clicks) // max(self.days - 1, 1)
        humans = 0.85 * self.clicks
        # Starts per human click so that the opt-ins add up to the wanted number.
        start_rate = self.optins / humans / 0.9
        weights = [1 / (n + 1) ** 0.8 for n in range(len(self.links))]
        for offset in range(self.days):
            day = first + timedelta(days=offset)
            count = today_clicks if day == today else per_day
            yield day, self._day(day, count, weights, start_rate)

    def _day(
        self, day: date, count: int, weights: list[float], start_rate: float
    ) -> dict[str, list[tuple[Any, ...]]]:
        rng = self.rng
        rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in TABLE_COLUMNS}
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        span = min(86400.0, (self.now - midnight).total_seconds())
        chosen = rng.choices(self.links, weights, k=count)
        moments = sorted(rng.random() * span for _ in range(count))
        for link, second in zip(chosen, moments, strict=True):
            at = midnight + timedelta(seconds=second)
            roll = rng.random()
            visitor = "human" if roll < 0.85 else "preview" if roll < 0.93 else "bot"
            click = self.next_id("clicks")
            channel = link.channels[0] if len(link.channels) == 1 else rng.choice(link.channels)
            source, medium, campaign, content = link.utm
            widget = None
            if rng.random() < 0.1:  # a widget button: the page's UTM source travels along
                widget, source = "w1", rng.choice(PAGE_SOURCES) or source
            rows["clicks"].append(
                (
                    click,
                    link.id,
                    channel if visitor == "human" else None,
                    f"{click:012X}" if visitor == "human" else None,
                    _stamp(at),
                    visitor,
                    rng.choice(("mobile", "desktop")),
                    "widget" if widget else "direct",
                    1,
                    source,
                    medium,
                    campaign,
                    content,
                    widget,
                )
            )
            if visitor == "human" and rng.random() < start_rate:
                utm = (source, medium, campaign, content)
                self._start(
                    rows, at + timedelta(seconds=rng.randrange(5, 900)), channel, click, link, utm
                )
        return rows

    def _start(
        self,
        rows: dict[str, list[tuple[Any, ...]]],
        at: datetime,
        channel: int,
        click: int | None,
        link: LinkSpec,
        utm: tuple[str | None, ...],
    ) -> None:
        rng = self.rng
        if at > self.now:
            return
        known = self.people[channel]
        start = self.next_id("starts")
        if known and rng.random() < 0.15:
            person = rng.choice(known[-5000:])  # someone back through another link
            person.last_start = start
        else:
            person = Person(self.next_id("subscribers"), channel, start, start)
            known.append(person)
            rows["subscribers"].append(
                (person.id, channel, f"user{person.id}", _stamp(at), _stamp(at))
            )
        if rng.random() < 0.05:  # no ref: the person came "direct"
            click, link_id, placement, utm = None, None, None, ("direct", None, None, None)
        else:
            link_id, placement = link.id, link.placement
        hook = self._hook(rows, channel, person.id, at)
        ref = f"{click:012X}" if click else None
        rows["starts"].append(
            (
                start,
                channel,
                person.id,
                hook,
                ref,
                click,
                link_id,
                placement,
                *utm,
                _stamp(at),
                _stamp(at),
            )
        )
        if rng.random() < 0.9:
            self._consent(rows, person, "opt_in", at)
            if rng.random() < 0.2:
                self._consent(rows, person, "opt_out", at + timedelta(hours=rng.randrange(1, 960)))

    def _consent(
        self, rows: dict[str, list[tuple[Any, ...]]], person: Person, kind: str, at: datetime
    ) -> None:
        if at > self.now:
            return
        hook = self._hook(rows, person.channel, person.id, at)
        event = self.next_id("consent_events")
        method = "telegram_start" if kind == "opt_in" else "telegram_blocked"
        rows["consent_events"].append(
            (
                event,
                person.channel,
                person.id,
                kind,
                method,
                _stamp(at),
                _stamp(at),
                hook,
                person.first_start,
                person.last_start,
            )
        )
        self.optin_count += kind == "opt_in"

    def _hook(
        self, rows: dict[str, list[tuple[Any, ...]]], channel: int, person: int, at: datetime
    ) -> int:
        hook = self.next_id("webhook_events")
        rows["webhook_events"].append(
            (hook, channel, str(hook), "update", channel, person, _stamp(at), _stamp(at))
        )
        return hook


def _stamp(at: datetime) -> datetime:
    return at


# loading -----------------------------------------------------------------------------------


DIMENSION_SQL = {
    "channels": "INSERT INTO channels (id, messenger, handle, name, credentials, created_at) "
    "VALUES ({})",
    "placements": "INSERT INTO placements (id, name, kind, cost, created_at) VALUES ({})",
    "links": "INSERT INTO links (id, code, source, medium, campaign, content, placement_id, "
    "created_at, updated_at, disabled, version) VALUES ({}, {}, false, 1)",
    "link_channels": "INSERT INTO link_channels (link_id, channel_id, position) VALUES ({})",
    "webhook_deliveries": "INSERT INTO webhook_deliveries (id, channel_id, via, received_at, "
    "body, body_sha256) VALUES ({})",
}


class Loader:
    """Writes rows into one engine and keeps the seconds it spent doing so."""

    name = ""
    seconds = 0.0

    def dimensions(self, rows: dict[str, list[tuple[Any, ...]]]) -> None: ...
    def day(self, rows: dict[str, list[tuple[Any, ...]]]) -> None: ...
    def finish(self) -> None: ...


class PostgresLoader(Loader):
    name = "PostgreSQL"

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=False)
        # No FK triggers during the bulk load (the rows are consistent by construction).
        self.conn.execute("SET session_replication_role = replica")
        self.indexes = _pg_drop_click_indexes(self.conn)

    def dimensions(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        began = time.perf_counter()
        with self.conn.cursor() as cur:
            for table, values in rows.items():
                sql = DIMENSION_SQL[table]
                width = len(values[0]) if values else 0
                marks = ", ".join(["%s"] * width)
                if table == "links":
                    sql = sql.format(marks, "%s")
                    values = [(*row, row[-1]) for row in values]
                else:
                    sql = sql.format(marks)
                cur.executemany(sql, values)
        self.conn.commit()
        self.seconds += time.perf_counter() - began

    def day(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        began = time.perf_counter()
        with self.conn.cursor() as cur:
            for table, values in rows.items():
                if not values:
                    continue
                columns = ", ".join(TABLE_COLUMNS[table])
                with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in values:
                        copy.write_row(row)
        self.conn.commit()
        self.seconds += time.perf_counter() - began

    def finish(self) -> None:
        began = time.perf_counter()
        for statement in self.indexes:
            self.conn.execute(statement)
        for table in ("clicks", "subscribers", "webhook_events", "starts", "consent_events"):
            self.conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        for table in ("channels", "placements", "links", "webhook_deliveries"):
            self.conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        self.conn.commit()
        self.conn.autocommit = True
        self.conn.execute("VACUUM ANALYZE")
        self.conn.close()
        self.seconds += time.perf_counter() - began


def _pg_drop_click_indexes(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'clicks' "
        "AND indexname LIKE 'ix_%'"
    ).fetchall()
    for name, _ in rows:
        conn.execute(f'DROP INDEX "{name}"')
    conn.commit()
    return [definition for _, definition in rows]


class SqliteLoader(Loader):
    name = "SQLite"

    def __init__(self, path: Path) -> None:
        import sqlite3

        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA foreign_keys=OFF")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("PRAGMA cache_size=-262144")
        found = self.conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'clicks' "
            "AND name LIKE 'ix_%'"
        ).fetchall()
        for name, _ in found:
            self.conn.execute(f'DROP INDEX "{name}"')
        self.indexes = [sql for _, sql in found]

    def dimensions(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        began = time.perf_counter()
        self.conn.execute("BEGIN")
        for table, values in rows.items():
            sql = DIMENSION_SQL[table]
            width = len(values[0]) if values else 0
            marks = ", ".join(["?"] * width)
            if table == "links":
                sql = sql.format(marks, "?").replace("false", "0")
                values = [(*row, row[-1]) for row in values]
            else:
                sql = sql.format(marks)
            self.conn.executemany(sql, [tuple(map(_sqlite, row)) for row in values])
        self.conn.execute("COMMIT")
        self.seconds += time.perf_counter() - began

    def day(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        began = time.perf_counter()
        self.conn.execute("BEGIN")
        for table, values in rows.items():
            columns = TABLE_COLUMNS[table]
            sql = (
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join(['?'] * len(columns))})"
            )
            self.conn.executemany(sql, [tuple(map(_sqlite, row)) for row in values])
        self.conn.execute("COMMIT")
        self.seconds += time.perf_counter() - began

    def finish(self) -> None:
        began = time.perf_counter()
        for statement in self.indexes:
            self.conn.execute(statement)
        self.conn.execute("ANALYZE")
        self.conn.close()
        self.seconds += time.perf_counter() - began


def _sqlite(value: Any) -> Any:
    # What SQLAlchemy stores for a UTC timestamp on SQLite: naive, microseconds always.
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


# timing ------------------------------------------------------------------------------------


def median_ms(call: Callable[[], Any], runs: int) -> float:
    call()  # warm the caches and the statement cache
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def queries(db: Database, now: datetime) -> list[tuple[str, Callable[[], Any]]]:
    today = now.date()
    until = today + timedelta(days=1)
    found: list[tuple[str, Callable[[], Any]]] = []
    for days in (30, 90):
        filters = dashboard.Filters(until - timedelta(days=days), until)

        def read(call: Callable[..., Any], *args: Any, f: dashboard.Filters = filters) -> Any:
            with db.reader() as session:
                return call(session, f, *args)

        found.append((f"funnel {days}d", lambda read=read: read(dashboard.funnel)))
        found.append((f"compare {days}d", lambda read=read: read(dashboard.compare)))
        found.append((f"series {days}d", lambda read=read: read(dashboard.series)))
        for group in dashboard.GROUPS:
            found.append(
                (
                    f"breakdown {group} {days}d",
                    lambda read=read, group=group: read(dashboard.breakdown, group),
                )
            )
        campaign = dashboard.Filters(
            until - timedelta(days=days), until, campaign=CAMPAIGNS[0], attribution="last"
        )
        found.append(
            (
                f"breakdown placement {days}d, one campaign, last touch",
                lambda f=campaign: _with(db, dashboard.breakdown, f, "placement"),
            )
        )
    return found


def _with(db: Database, call: Callable[..., Any], *args: Any) -> Any:
    with db.reader() as session:
        return call(session, *args)


@dataclass
class Result:
    name: str
    load: float = 0.0
    rebuild: float = 0.0
    refresh: float = 0.0
    two_days: float = 0.0
    dirty: float = 0.0
    dirty_days: str = ""
    rows: int = 0
    clicks: int = 0
    optins: int = 0
    queries: dict[str, float] = field(default_factory=dict)


def measure(name: str, db: Database, now: datetime, runs: int, result: Result) -> None:
    print(f"[{name}] rebuilding the rollup…", flush=True)
    began = time.perf_counter()
    rollups.rebuild(db.writer, now=now)
    result.rebuild = time.perf_counter() - began
    with db.reader() as session:
        result.rows = int(session.scalar(select(func.count()).select_from(DailyStat)) or 0)
        result.clicks = int(session.scalar(text("SELECT count(*) FROM clicks")) or 0)
        result.optins = int(
            session.scalar(text("SELECT count(*) FROM consent_events WHERE kind = 'opt_in'")) or 0
        )
    print(f"[{name}] rebuilt in {result.rebuild:.1f} s: {result.rows:,} rollup rows", flush=True)
    today = now.date()

    def refresh() -> rollups.Refreshed:
        with db.writer.begin() as session:
            done = rollups.refresh(session, now)
        assert done is not None
        return done

    # Steady state: today's rows (yesterday's were just computed, so they are not due).
    result.refresh = median_ms(refresh, 3) / 1000
    # The first hour after midnight: today and yesterday.
    yesterday = today - timedelta(days=1)
    result.two_days = median_ms(lambda: rollups.rebuild(db.writer, since=yesterday, now=now), 3)
    result.two_days /= 1000

    # A late opt-out for ten days ago, marked dirty: that day in full, the people counters of
    # the month before it (retention) and of the later days of the same people.
    def dirty() -> rollups.Refreshed:
        with db.writer.begin() as session:
            rollups.mark_dirty(session, [today - timedelta(days=10)])
        return refresh()

    result.dirty = median_ms(dirty, 3) / 1000
    done = dirty()
    result.dirty_days = f"{len(done.days)} in full, {len(done.people_days)} people only"
    # The rebuild and the refreshes above replaced rows many times over; in production
    # autovacuum tidies up behind a refresh. Do it now, so that the queries below are not
    # timed against a vacuum running in the background.
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE daily_stats, weekly_stats")
    else:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    for label, call in queries(db, now):
        result.queries[label] = median_ms(call, runs)
        print(f"[{name}] {label}: {result.queries[label]:.1f} ms", flush=True)


def report(results: list[Result], args: argparse.Namespace) -> None:
    names = [r.name for r in results]
    print()
    print(
        f"clicks {results[0].clicks:,}, opt-ins {results[0].optins:,}, median of {args.runs} runs"
        f"; load average {os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} CPUs)"
    )
    print()
    print("| | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    print("| load (s) | " + " | ".join(f"{r.load:.0f}" for r in results) + " |")
    print(
        "| rollup rebuild, all days (s) | " + " | ".join(f"{r.rebuild:.1f}" for r in results) + " |"
    )
    print("| rollup rows | " + " | ".join(f"{r.rows:,}" for r in results) + " |")
    print(
        "| refresh, steady state: today, 100k clicks (ms) | "
        + " | ".join(f"{r.refresh * 1000:.0f}" for r in results)
        + " |"
    )
    print(
        "| recompute today + yesterday, as in the hour after midnight (ms) | "
        + " | ".join(f"{r.two_days * 1000:.0f}" for r in results)
        + " |"
    )
    print(
        f"| refresh with one day marked dirty ({results[0].dirty_days} days) (ms) | "
        + " | ".join(f"{r.dirty * 1000:.0f}" for r in results)
        + " |"
    )
    for label in results[0].queries:
        print(f"| {label} (ms) | " + " | ".join(f"{r.queries[label]:.1f}" for r in results) + " |")


# main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=5_000_000)
    parser.add_argument("--optins", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--db", default="postgresql,sqlite")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    args = parser.parse_args()
    engines = [name.strip() for name in args.db.split(",") if name.strip()]
    now = datetime.now(UTC)
    scratch = Path(tempfile.mkdtemp(prefix="acq-dash-bench-"))
    urls: dict[str, str] = {}
    if "postgresql" in engines:
        admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{BENCH_DB}"'))
        admin.dispose()
        urls["postgresql"] = (
            make_url(POSTGRES_URL).set(database=BENCH_DB).render_as_string(hide_password=False)
        )
    if "sqlite" in engines:
        urls["sqlite"] = f"sqlite:///{scratch / 'bench.db'}"
    databases = {}
    for name, url in urls.items():
        db = connect(Settings(database_url=url, secret_key="bench-secret-key-0123456789"))
        migrate(db.engine)
        databases[name] = db
    loaders: dict[str, Loader] = {}
    if "postgresql" in urls:
        loaders["postgresql"] = PostgresLoader(
            make_url(urls["postgresql"]).set(drivername="postgresql").render_as_string(False)
        )
    if "sqlite" in urls:
        loaders["sqlite"] = SqliteLoader(scratch / "bench.db")

    generator = Generator(args.clicks, args.optins, args.days, now)
    began = time.perf_counter()
    dimensions = generator.dimensions()
    for loader in loaders.values():
        loader.dimensions(dimensions)
    for day, rows in generator.day_rows():
        for loader in loaders.values():
            loader.day(rows)
        if day.day % 10 == 0:
            spent = ", ".join(
                f"{loader.name} {loader.seconds:.0f} s" for loader in loaders.values()
            )
            print(f"loaded up to {day} ({time.perf_counter() - began:.0f} s; {spent})", flush=True)
    for loader in loaders.values():
        loader.finish()
    print(
        f"generated and loaded {generator.ids.get('clicks', 0):,} clicks and "
        f"{generator.optin_count:,} opt-ins in {time.perf_counter() - began:.0f} s",
        flush=True,
    )

    results = []
    try:
        for name, db in databases.items():
            result = Result(loaders[name].name, load=loaders[name].seconds)
            measure(result.name, db, now, args.runs, result)
            results.append(result)
        report(results, args)
    finally:
        for db in databases.values():
            db.dispose()
        if not args.keep:
            if "postgresql" in urls:
                admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)'))
                admin.dispose()
            for path in scratch.glob("*"):
                path.unlink()
            scratch.rmdir()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
