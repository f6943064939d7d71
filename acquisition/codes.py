"""Short codes: the part of a short URL after the slash, printed on paper and typed by people.

Generated codes are Crockford base32 (no I, L, O, U) so they survive being read off a poster;
lookup is case-insensitive, and a typed O, I or L is read as 0, 1, 1. Custom slugs are ASCII only.
"""

from __future__ import annotations

import re
import secrets

from acquisition.errors import Invalid

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 7
SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{2,31}")
# What a person may type instead of the canonical letter (Crockford's decoding rules).
LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})

# First path segments the service itself routes; a code may never shadow them.
RESERVED = frozenset(
    {
        "API",
        "HOOKS",
        "W",
        "ADMIN",
        "HEALTHZ",
        "METRICS",
        "STATIC",
        "FAVICON.ICO",
        "ROBOTS.TXT",
        "LOGIN",
        "LOGOUT",
        "DOCS",
        "OPENAPI.JSON",
        "QR",
        "HEALTH",
        "STATUS",
        "ASSETS",
        "WELL-KNOWN",
    }
)


def generate() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def canonical(raw: str) -> str:
    """The stored, unique form of a code or slug: upper case."""
    return raw.upper()


def lookalike(raw: str) -> str:
    """The Crockford reading of what someone typed (O→0, I/L→1), tried when the literal misses."""
    return raw.upper().translate(LOOKALIKES)


def could_be_code(raw: str) -> bool:
    return len(raw) <= 32 and SLUG.fullmatch(raw) is not None


def parse_slug(raw: object, field: str = "slug") -> str:
    if not isinstance(raw, str):
        raise Invalid("slug must be a string", field=field)
    if not raw.isascii() or SLUG.fullmatch(raw) is None:
        raise Invalid(
            "slug must be 3-32 ASCII letters, digits, '-' or '_', starting with a letter or digit",
            field=field,
        )
    if canonical(raw) in RESERVED:
        raise Invalid(f"slug {raw!r} is reserved for the service's own pages", field=field)
    return canonical(raw)
