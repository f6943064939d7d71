"""Daily rollups the dashboard reads instead of raw clicks, and the bookkeeping that keeps them
current (see acquisition/rollups.py for how they are computed).

The refresher replaces a day's rows from the base tables in one transaction (or, for days
whose clicks cannot have changed, only their people counters). "None" is 0 for ids and "" for
text, so the primary key works on both engines (NULLs are never equal in a key).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from acquisition.models.base import Base, UTCDateTime

# `previous_day` of rows that do not repeat anyone (every click, start and impression row).
NEVER = date(1970, 1, 1)


class RollupCounters:
    """The key and counters of a rollup row (shared by the daily and the weekly table).

    People counters (opt-ins, opt-outs, and the retention of those opt-ins) come in pairs: the
    person-day counted under its first touch (`*_first`) and under its last (`*_last`); a query
    reads one of the two. Keeping both in one row, rather than a row per attribution, halves
    the rows a dashboard query scans: most people have one touch, so both land in the row of
    that touch's clicks.

    People are counted once per channel in any period: a person-day whose subscriber had an
    event of the same kind on an earlier day goes into a row with that day as `previous_day`,
    and a period counts the row only when `previous_day` falls before the period (so only the
    person's first day in the period counts). Every other row has `previous_day` = NEVER.
    """

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    link_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Rows with a link take the link's current placement when read (moving a link to another
    # placement moves its history too); rows without one (widget impressions) carry their own.
    placement_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    medium: Mapped[str] = mapped_column(String(100), primary_key=True)
    campaign: Mapped[str] = mapped_column(String(100), primary_key=True)
    content: Mapped[str] = mapped_column(String(100), primary_key=True)
    previous_day: Mapped[date] = mapped_column(Date, primary_key=True)
    impressions: Mapped[int] = mapped_column(Integer, default=0)
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    previews: Mapped[int] = mapped_column(Integer, default=0)
    bots: Mapped[int] = mapped_column(Integer, default=0)
    starts: Mapped[int] = mapped_column(Integer, default=0)
    optins_first: Mapped[int] = mapped_column(Integer, default=0)
    optins_last: Mapped[int] = mapped_column(Integer, default=0)
    optouts_first: Mapped[int] = mapped_column(Integer, default=0)
    optouts_last: Mapped[int] = mapped_column(Integer, default=0)
    # Of the opt-ins: how many were at least 7 (30) days old when the row was computed, and how
    # many of those were still subscribed 7 (30) days after opting in.
    matured_7d_first: Mapped[int] = mapped_column(Integer, default=0)
    matured_7d_last: Mapped[int] = mapped_column(Integer, default=0)
    retained_7d_first: Mapped[int] = mapped_column(Integer, default=0)
    retained_7d_last: Mapped[int] = mapped_column(Integer, default=0)
    matured_30d_first: Mapped[int] = mapped_column(Integer, default=0)
    matured_30d_last: Mapped[int] = mapped_column(Integer, default=0)
    retained_30d_first: Mapped[int] = mapped_column(Integer, default=0)
    retained_30d_last: Mapped[int] = mapped_column(Integer, default=0)


class DailyStat(RollupCounters, Base):
    """Counters for one UTC day and one combination of link (or placement), channel and UTM
    values: what the refresher computes from the base tables."""

    __tablename__ = "daily_stats"


class WeeklyStat(RollupCounters, Base):
    """The daily rows of one ISO week (Monday to Sunday, UTC) added up, `day` being its Monday.

    A link, channel and UTM combination recurs day after day, so a week holds about a third of
    the rows of its seven days: a dashboard period reads its whole weeks here and only the days
    at its edges from `daily_stats`. Recomputed from `daily_stats` whenever one of its days is.
    """

    __tablename__ = "weekly_stats"


class RollupDay(Base):
    """One row per day the rollup covers: whether it must be recomputed, and as of when.

    `marked` is bumped by every mark_dirty(); a refresh records the value it saw in `done`, so
    a mark made while it ran keeps the day dirty. `settled` is set once a refresh ran after the
    day's last opt-in was 30 days old: its retention counters cannot change with time any more.
    """

    __tablename__ = "rollup_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    marked: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    settled: Mapped[bool] = mapped_column(Boolean, default=False)
