"""Refs: the opaque token a click carries into the messenger and gets back with the start.

A ref is 12 characters of Crockford base32 (60 random bits): it fits every messenger's payload
alphabet, and people can read it aloud or keep it in an edited WhatsApp message.
"""

from __future__ import annotations

import re
import secrets

from acquisition.codes import ALPHABET, LOOKALIKES

LENGTH = 12
PATTERN = re.compile(rf"[{ALPHABET}]{{{LENGTH}}}")


def make() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalize(raw: str) -> str | None:
    """Canonical form of a ref someone sent back, or None if it cannot be one of ours."""
    candidate = raw.strip().upper().translate(LOOKALIKES).replace("-", "")
    return candidate if PATTERN.fullmatch(candidate) else None
