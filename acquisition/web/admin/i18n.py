"""English and Russian for the admin: the language of a request, the words, and how numbers,
money and dates are written in each.

Messages are keyed by their English text; `RU` holds the translations (its own module, it is
long). A missing translation shows the English text, and a test checks there is none missing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from starlette.requests import Request

from acquisition.web.admin.catalog import EN, RU

LANGS = ("en", "ru")
COOKIE = "acq_lang"
MONTHS = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "ru": (
        "янв",
        "фев",
        "мар",
        "апр",
        "мая",
        "июн",
        "июл",
        "авг",
        "сен",
        "окт",
        "ноя",
        "дек",
    ),
}
DASH = "—"
# Russian groups thousands with a space (a no-break one, so a number never wraps).
NBSP = "\u00a0"


def negotiate(request: Request) -> str:
    """The chosen language (cookie), else the first of ours the browser asks for, else en."""
    chosen = request.cookies.get(COOKIE)
    if chosen in LANGS:
        return chosen
    return from_accept_language(request.headers.get("accept-language", ""))


def from_accept_language(header: str) -> str:
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")[:20]):
        tag, _, params = item.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGS and weight > 0:
            ranked.append((-weight, position, primary))
    return sorted(ranked)[0][2] if ranked else "en"


def translator(lang: str) -> Callable[..., str]:
    table = RU if lang == "ru" else EN

    def t(message: str, **values: Any) -> str:
        text = table.get(message, message)
        return text.format(**values) if values else text

    return t


class Formats:
    """Numbers, percentages, money and dates the way the reader's language writes them."""

    def __init__(self, lang: str) -> None:
        self.lang = lang

    def _group(self, text: str) -> str:
        return text.replace(",", NBSP) if self.lang == "ru" else text

    def num(self, value: int | float | None) -> str:
        if value is None:
            return DASH
        return self._group(f"{value:,.0f}")

    def pct(self, value: float | None, digits: int = 1) -> str:
        if value is None:
            return DASH
        text = f"{value * 100:.{digits}f}"
        return f"{text.replace('.', ',')}{NBSP}%" if self.lang == "ru" else f"{text}%"

    def money(self, value: Decimal | float | None) -> str:
        if value is None:
            return DASH
        text = self._group(f"{Decimal(value):,.2f}")
        return text.replace(".", ",") if self.lang == "ru" else text

    def change(self, now: float, before: float) -> str | None:
        """Relative change against the previous period, e.g. +12%; None when not defined."""
        if not before:
            return None
        ratio = (now - before) / before
        sign = "+" if ratio > 0 else "−" if ratio < 0 else "±"
        return sign + self.pct(abs(ratio), 0)

    def day(self, value: date) -> str:
        month = MONTHS[self.lang][value.month - 1]
        return f"{value.day} {month}" if self.lang == "ru" else f"{month} {value.day}"

    def full_day(self, value: date) -> str:
        return f"{self.day(value)} {value.year}"

    def when(self, value: datetime | str | None) -> str:
        if value is None:
            return DASH
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return f"{self.full_day(value.date())}, {value:%H:%M} UTC"
