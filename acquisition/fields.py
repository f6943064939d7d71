"""Parsers for the input fields every spec shares: bounded text, ids, flags, timestamps, money.

Each parser raises `Invalid` naming its field; `Problems` gathers several so one answer lists
every bad field of a request (and of every item of a batch) at once.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from acquisition.errors import FieldError, Invalid

T = TypeVar("T")


class Problems:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def take(self, parse: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        try:
            return parse(*args, **kwargs)
        except Invalid as error:
            self.errors.extend(error.errors)
            return None

    def add(self, field: str, message: str) -> None:
        self.errors.append(FieldError(field, message))

    def check(self, summary: str = "some fields are invalid") -> None:
        if self.errors:
            if len(self.errors) == 1:
                summary = f"{self.errors[0].field}: {self.errors[0].message}"
            raise Invalid(summary, errors=self.errors)


def obj(data: object, field: str = "body") -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise Invalid("must be a JSON object", field=field)
    return data


def unknown_keys(
    data: Mapping[str, Any], allowed: set[str], prefix: str, problems: Problems
) -> None:
    for key in data:
        if key not in allowed:
            problems.add(f"{prefix}{key}", "unknown field")


def text(
    data: Mapping[str, Any],
    name: str,
    *,
    max_length: int,
    prefix: str = "",
    required: bool = False,
    multiline: bool = False,
) -> str | None:
    """A bounded, printable string; blank counts as absent. Control characters are refused."""
    field = prefix + name
    value = data.get(name)
    if value is None:
        if required:
            raise Invalid("is required", field=field)
        return None
    if not isinstance(value, str):
        raise Invalid("must be a string", field=field)
    value = unicodedata.normalize("NFC", value.strip())
    if not value:
        if required:
            raise Invalid("must not be empty", field=field)
        return None
    if len(value) > max_length:
        raise Invalid(f"must be at most {max_length} characters", field=field)
    allowed = {"\n"} if multiline else set()
    for char in value:
        if char not in allowed and unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise Invalid(
                f"must not contain control or invisible characters (found U+{ord(char):04X})",
                field=field,
            )
    return value


def integer(value: object, field: str, *, low: int = 1, high: int = 2**31 - 1) -> int:
    # bool is an int in Python, never in an API.
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("must be a whole number", field=field)
    if not low <= value <= high:
        raise Invalid(f"must be between {low} and {high}", field=field)
    return value


def flag(data: Mapping[str, Any], name: str, prefix: str = "", default: bool = False) -> bool:
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise Invalid("must be true or false", field=prefix + name)
    return value


def timestamp(data: Mapping[str, Any], name: str, prefix: str = "") -> datetime | None:
    field = prefix + name
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise Invalid("must be an ISO 8601 date-time string", field=field)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(
            "must be an ISO 8601 date-time such as 2026-12-01T09:00:00Z", field=field
        ) from None
    if parsed.tzinfo is None:
        raise Invalid("must include a time zone (e.g. Z or +03:00)", field=field)
    return parsed


def money(data: Mapping[str, Any], name: str, prefix: str = "") -> Decimal | None:
    field = prefix + name
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Invalid("must be a number", field=field)
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid("must be a finite number", field=field)
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        raise Invalid("must be a number such as 1500 or 1500.50", field=field) from None
    if not amount.is_finite() or amount < 0 or amount >= Decimal("1e12"):
        raise Invalid("must be between 0 and 999999999999.99", field=field)
    return amount


def choice(
    data: Mapping[str, Any],
    name: str,
    options: tuple[str, ...],
    prefix: str = "",
    default: str | None = None,
) -> str | None:
    field = prefix + name
    value = data.get(name, default)
    if value is None:
        return None
    if not isinstance(value, str) or value not in options:
        raise Invalid(f"must be one of: {', '.join(options)}", field=field)
    return value
