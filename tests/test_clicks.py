"""The click spool's drain: the database takes apart a whole chunk of spooled lines at once;
these are the promises around that (time kept exactly, replays idempotent, one bad line never
blocks the others, refs reported for late starts)."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, func, select

from acquisition import dashboard, refs, rollups
from acquisition.clicks import (
    COLUMNS,
    ClickSpool,
    _earlier_days,
    _insert_sql,
    _json_array,
    _values_sql,
)
from acquisition.db import Database
from acquisition.errors import Unavailable
from acquisition.models import Click, RollupDay
from tests.factories import make_channel, make_link


def line(link_id: int, channel_id: int | None, **values: Any) -> bytes:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(
        link_id=link_id,
        channel_id=channel_id,
        ref=refs.make(),
        at="2026-11-27T05:04:03.000007+00:00",
        visitor="human",
        device="mobile",
        via="link",
        link_version=1,
        user_agent="Mozilla/5.0 «тест» 😀",
        source="flyer",
    )
    row.update(values)
    return (json.dumps([row[name] for name in COLUMNS], ensure_ascii=False) + "\n").encode()


def spool_file(tmp_path: Path, lines: list[bytes]) -> Path:
    path = tmp_path / "spool" / "clicks-1-1.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"".join(lines))
    return path


def drain_whole(spool: ClickSpool, path: Path) -> int:
    """Drain a spool file from its first byte to its last; the bytes consumed."""
    return spool._drain_file(path, 0, path.stat().st_size)


def stored(db: Database) -> list[Click]:
    with db.reader() as s:
        return list(s.scalars(select(Click).order_by(Click.id)))


def test_spooled_clicks_arrive_whole_and_exact(db: Database, tmp_path: Path) -> None:
    channel = make_channel(db)
    link = make_link(db, [channel.id])
    lines = [
        line(link.id, channel.id),
        line(link.id, None, visitor="bot", device="other", at="2026-11-27T05:04:03+00:00"),
    ]
    reported: list[list[str]] = []
    spool = ClickSpool(tmp_path / "spool", db.engine, on_stored=reported.append)
    path = spool_file(tmp_path, lines)
    assert drain_whole(spool, path) == path.stat().st_size
    human, bot = stored(db)
    assert human.at == datetime(2026, 11, 27, 5, 4, 3, 7, tzinfo=UTC)
    assert (human.user_agent, human.source, human.channel_id) == (
        "Mozilla/5.0 «тест» 😀",
        "flyer",
        channel.id,
    )
    assert (bot.visitor, bot.channel_id, bot.referrer) == ("bot", None, None)
    assert bot.at == datetime(2026, 11, 27, 5, 4, 3, tzinfo=UTC)  # no microseconds spelled out
    assert reported == [[human.ref, bot.ref]]
    # A replay (a restart after a crash mid-drain) adds nothing.
    drain_whole(spool, path)
    assert len(stored(db)) == 2


def test_a_chunk_some_of_whose_clicks_are_stored_already_stores_the_rest_once(
    db: Database, tmp_path: Path
) -> None:
    """A drain whose commit went through but whose answer was lost retries lines the database
    holds; chunks go in plainly first, so this is the collision path."""
    channel = make_channel(db)
    link = make_link(db, [channel.id])
    lines = [line(link.id, channel.id) for _ in range(6)]
    reported: list[list[str]] = []
    spool = ClickSpool(tmp_path / "spool", db.engine, on_stored=reported.append)
    drain_whole(spool, spool_file(tmp_path, lines[1:4]))
    path = spool_file(tmp_path, lines)
    assert drain_whole(spool, path) == path.stat().st_size
    refs_ = [json.loads(item)[COLUMNS.index("ref")] for item in lines]
    assert sorted(click.ref for click in stored(db)) == sorted(refs_)
    assert reported[-1] == refs_  # a late start waiting for any of them is looked for


def test_two_clicks_that_share_a_ref_months_apart_are_both_stored(
    db: Database, tmp_path: Path
) -> None:
    """60-bit refs repeat a few times a year at ten million clicks a day: the later click
    is an acknowledged click of its own, not a replay to skip."""
    channel = make_channel(db)
    link = make_link(db, [channel.id])
    ref = refs.make()
    spring = line(link.id, channel.id, ref=ref, at="2026-03-01T10:00:00.000001+00:00")
    autumn = line(link.id, channel.id, ref=ref, at="2026-11-27T05:04:03.000007+00:00")
    spool = ClickSpool(tmp_path / "spool", db.engine)
    drain_whole(spool, spool_file(tmp_path, [spring]))
    path = spool_file(tmp_path, [spring, autumn])  # a replay of the first, then the second
    drain_whole(spool, path)
    drain_whole(spool, path)
    assert [(click.ref, click.at.month) for click in stored(db)] == [(ref, 3), (ref, 11)]


def test_a_torn_or_refused_line_is_skipped_and_the_rest_stored(
    db: Database, tmp_path: Path
) -> None:
    channel = make_channel(db)
    link = make_link(db, [channel.id])
    good = [line(link.id, channel.id) for _ in range(5)]
    refused = line(link.id, channel.id, visitor="alien")  # the table's CHECK refuses it
    torn = good[4][:40] + b"\n"  # a crash mid-write: never acknowledged
    path = spool_file(tmp_path, [good[0], refused, good[1], torn, good[2], good[3]])
    spool = ClickSpool(tmp_path / "spool", db.engine)
    drain_whole(spool, path)
    expected = [json.loads(item)[COLUMNS.index("ref")] for item in good[:4]]
    assert sorted(click.ref for click in stored(db)) == sorted(expected)


def test_an_unfinished_last_line_waits(db: Database, tmp_path: Path) -> None:
    channel = make_channel(db)
    link = make_link(db, [channel.id])
    first, second = line(link.id, channel.id), line(link.id, channel.id)
    path = spool_file(tmp_path, [first, second[:-10]])
    spool = ClickSpool(tmp_path / "spool", db.engine)
    assert drain_whole(spool, path) == len(first)
    assert len(stored(db)) == 1


def test_clicks_drained_for_an_earlier_day_reach_that_days_rollup(
    db: Database, tmp_path: Path
) -> None:
    """A spool replayed days late (a worker's file found after a crash, a long outage): the
    dashboard, which reads the daily rollup, must count its clicks on their own day."""
    channel = make_channel(db)
    link = make_link(db, [channel.id])
    now = datetime.now(UTC)
    old = (now - timedelta(days=5)).replace(hour=10)
    with db.writer.begin() as s:
        rollups.refresh(s, now)  # the old day is past the refresher's own window from now on
    lines = [line(link.id, channel.id, at=(old + timedelta(hours=n)).isoformat()) for n in range(3)]
    path = spool_file(tmp_path, lines)
    drain_whole(ClickSpool(tmp_path / "spool", db.engine), path)
    with db.writer.begin() as s:
        done = rollups.refresh(s, now)
    assert done is not None and old.date() in done.days
    day = dashboard.Filters(old.date(), old.date() + timedelta(days=1))
    with db.reader() as s:
        assert dashboard.funnel(s, day).clicks == 3
    # Today's clicks mark nothing: today is refreshed on every run anyway.
    path = spool_file(tmp_path, [line(link.id, channel.id, at=now.isoformat())])
    drain_whole(ClickSpool(tmp_path / "spool", db.engine), path)
    with db.reader() as s:
        assert s.scalar(select(func.count()).where(RollupDay.marked > RollupDay.done)) == 0


def test_the_days_of_a_chunk_are_bounded_by_its_first_and_last_click() -> None:
    today = datetime.now(UTC).replace(hour=12)
    at = [(today - timedelta(days=n)).isoformat() for n in (4, 2, 0)]
    chunk = [line(1, 1, at=value) for value in at]
    assert _earlier_days(chunk) == [(today - timedelta(days=n)).date() for n in (4, 3, 2, 1)]
    assert _earlier_days(chunk[-1:]) == []
    assert _earlier_days([line(1, 1, at="garbled")]) == []


def click_row(link_id: int, channel_id: int) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(
        link_id=link_id,
        channel_id=channel_id,
        ref=refs.make(),
        at=datetime.now(UTC),
        visitor="human",
        device="mobile",
        via="link",
        link_version=1,
    )
    return row


def test_the_fsync_helper_outlives_a_stop_signal_and_a_lost_one_is_replaced(
    db: Database, tmp_path: Path
) -> None:
    """The helper that fdatasyncs the spool ignores SIGTERM (a stop signal reaches the whole
    process group while the worker still answers its last clicks); if it dies anyway, the
    clicks it never confirmed are refused, not acknowledged, and the next one is synced by a
    new helper. Every acknowledged click is stored."""
    channel = make_channel(db)
    link = make_link(db, [channel.id])

    async def scenario() -> tuple[list[str], int]:
        spool = ClickSpool(tmp_path / "spool", db.engine)
        spool.start()
        acknowledged = [await spool.record(click_row(link.id, channel.id))]
        helper = spool._helper
        assert helper is not None
        helper.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        assert helper.poll() is None
        acknowledged.append(await spool.record(click_row(link.id, channel.id)))
        helper.kill()
        helper.wait()
        refused = 0
        for _ in range(3):
            try:
                acknowledged.append(await spool.record(click_row(link.id, channel.id)))
            except Unavailable:
                refused += 1
        assert spool._helper is not None and spool._helper is not helper
        last = await spool.record(click_row(link.id, channel.id))
        acknowledged.append(last)
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, spool.wait_drained)
        await spool.close()
        return acknowledged, refused

    acknowledged, refused = asyncio.run(scenario())
    assert refused <= 1  # at most the group the dead helper was asked to sync
    assert set(acknowledged) <= {click.ref for click in stored(db)}
    assert len(acknowledged) >= 5


def test_a_lone_click_waits_briefly_for_company_but_a_lone_clicker_only_once(
    db: Database, tmp_path: Path
) -> None:
    """Clicks that come one at a time, each on its own connection, share an fdatasync instead
    of paying for one each; a click after a quiet spell goes out at once, and a client that
    clicks one at a time is kept waiting once, not on every click."""
    channel = make_channel(db)
    link = make_link(db, [channel.id])
    window = 1.0

    async def scenario() -> tuple[list[int], list[float]]:
        spool = ClickSpool(tmp_path / "spool", db.engine, company_wait=window)
        spool.start()
        groups: list[int] = []
        append = spool._append

        def counted(data: bytes) -> tuple[Path, int]:
            groups.append(data.count(b"\n"))
            return append(data)

        spool._append = counted  # type: ignore[method-assign]
        loop = asyncio.get_running_loop()
        took = []

        async def click() -> str:
            start = loop.time()
            ref = await spool.record(click_row(link.id, channel.id))
            took.append(loop.time() - start)
            return ref

        await click()  # after a quiet spell: at once
        # Two clicks a moment apart, as from two people: the second joins the first's group.
        first = asyncio.ensure_future(click())
        await asyncio.sleep(0.05)
        await asyncio.gather(first, click())
        await click()  # one person alone, right after a group: waits, nobody comes
        await click()  # and again: this time at once
        assert await loop.run_in_executor(None, spool.wait_drained)
        await spool.close()
        return groups, took

    groups, took = asyncio.run(scenario())
    assert groups == [1, 2, 1, 1]
    assert took[0] < window / 2
    assert took[3] > window / 2  # the lone click waited for company
    assert took[4] < window / 2  # and the next one did not
    assert len(stored(db)) == 5


def drained_both_ways(lines: list[bytes]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows SQLite stores from these spool lines with the JSON statement and with the
    literal one (each into an empty clicks table of its own)."""
    lines = [item.rstrip(b"\n") for item in lines]
    results = []
    for literal in (False, True):
        connection = sqlite3.connect(":memory:")
        engine = create_engine("sqlite://", creator=lambda c=connection: c)
        Click.__table__.create(engine)
        if literal:
            sql = _values_sql(lines)
            assert sql is not None
            connection.execute(sql)
        else:
            connection.execute(_insert_sql("sqlite"), (_json_array(lines),))
        results.append(connection.execute(f"SELECT {', '.join(COLUMNS)} FROM clicks").fetchall())
        connection.close()
    return results[0], results[1]


TRICKY = [
    "O'Brien's \"quoted\" ad",  # becomes an escape in JSON: this chunk goes the JSON way
    "'); DROP TABLE clicks; --",
    "x] , (SELECT 1) , [y",
    "a),(b",
    "/* not a comment */ -- nor this",
    "] [ ],[",
    "«тест» 😀 null 1,2",
    "",
]


def test_a_chunk_spelled_as_sql_literals_stores_exactly_what_the_json_statement_does() -> None:
    at = "2026-11-27T05:04:03.000007+00:00"
    lines = [line(1, None), line(2, 3, at="2026-11-27T05:04:03+00:00")]
    lines += [line(1, 2, source=text, referrer=text, page=text) for text in TRICKY[1:]]
    lines.append(line(1, 2, at=at, link_version=123456789012))
    by_json, by_literal = drained_both_ways(lines)
    assert by_literal == by_json
    assert len(by_literal) == len(lines)
    assert {row[COLUMNS.index("source")] for row in by_literal} >= set(TRICKY[1:-1])
    # A string with an escape in it takes the JSON statement.
    assert _values_sql([item[:-1] for item in [*lines, line(1, 2, source=TRICKY[0])]]) is None


@given(
    texts=st.lists(
        st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\\\0")),
        min_size=1,
        max_size=8,
    )
)
@settings(max_examples=150, deadline=None)
def test_any_text_is_stored_as_itself_either_way(texts: list[str]) -> None:
    lines = [line(n, None, source=text[:100], user_agent=text) for n, text in enumerate(texts)]
    if _values_sql([item[:-1] for item in lines]) is None:
        # Only a chunk whose JSON holds an escape (a quote, a control character) goes the
        # JSON way; the rest is spelled as literals.
        assert any(b"\\" in item for item in lines)
        return
    by_json, by_literal = drained_both_ways(lines)
    assert by_literal == by_json
    assert [row[COLUMNS.index("user_agent")] for row in by_literal] == texts


@pytest.mark.parametrize(
    "garbled",
    [
        pytest.param(lambda good: [good[0][:40] + good[1], good[2]], id="torn-line-glued-to-next"),
        pytest.param(lambda good: [good[0].replace(b"[1,", b"[lower(1),", 1)], id="a-name"),
        pytest.param(lambda good: [good[0].replace(b"[1,", b"[1e5,", 1)], id="an-exponent"),
        pytest.param(lambda good: [good[0].replace(b"[1,", b"[-1,", 1)], id="a-minus"),
        pytest.param(lambda good: [good[0], b"", good[1]], id="an-empty-line"),
        pytest.param(lambda good: [good[0] + b" " + good[1]], id="two-on-one-line"),
    ],
)
def test_a_garbled_chunk_is_never_spelled_as_sql(garbled: Any) -> None:
    good = [line(1, 2, user_agent="x] , (SELECT 1) , [y")[:-1] for _ in range(3)]
    assert _values_sql(good) is not None
    assert _values_sql(garbled(good)) is None


def test_a_chunk_the_literal_statement_fails_on_is_drained_the_json_way(
    db: Database, tmp_path: Path
) -> None:
    """SQLite refuses a literal chunk with a line of the wrong width as a whole; the JSON
    statement then skips that line alone."""
    channel = make_channel(db)
    link = make_link(db, [channel.id])
    good = [line(link.id, channel.id) for _ in range(3)]
    wide = good[0][:-2] + b",1]\n"  # one column too many, and the same ref as good[0]
    path = spool_file(tmp_path, [good[1], wide, good[2], good[0]])
    spool = ClickSpool(tmp_path / "spool", db.engine)
    assert drain_whole(spool, path) == path.stat().st_size
    expected = sorted(json.loads(item)[COLUMNS.index("ref")] for item in good)
    assert sorted(click.ref for click in stored(db)) == expected
