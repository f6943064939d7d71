"""Refs: the opaque token a click carries into the messenger and gets back with the start.

A ref is 12 characters of Crockford base32 (60 random bits): it fits every messenger's payload
alphabet, and people can read it aloud or keep it in an edited WhatsApp message.
"""

from __future__ import annotations

import base64
import os
import re

from acquisition.codes import ALPHABET, LOOKALIKES

LENGTH = 12
PATTERN = re.compile(rf"[{ALPHABET}]{{{LENGTH}}}")


# base32 of 8 random bytes, read in Crockford's alphabet instead of RFC 4648's; the first 12
# characters carry 60 random bits. (secrets.choice per character costs 16 µs on the hot path.)
_FROM_RFC4648 = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", ALPHABET)


_pool = bytearray()


def make() -> str:
    # One getrandom() call per 512 refs instead of one per ref (it is a syscall on the hot path).
    global _pool
    if len(_pool) < 8:
        _pool = bytearray(os.urandom(4096))
    chunk = bytes(_pool[-8:])
    del _pool[-8:]
    return base64.b32encode(chunk).decode()[:LENGTH].translate(_FROM_RFC4648)


def normalize(raw: str) -> str | None:
    """Canonical form of a ref someone sent back, or None if it cannot be one of ours."""
    candidate = raw.strip().upper().translate(LOOKALIKES).replace("-", "")
    return candidate if PATTERN.fullmatch(candidate) else None
