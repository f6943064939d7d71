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


# Refs are cut from one long base32 string of random bytes, read in Crockford's alphabet instead
# of RFC 4648's: every 12 characters carry 60 random bits. One getrandom() and one encoding per
# 640 refs (secrets.choice per character costs 16 µs on the hot path; base64's encoder is
# pure Python and costs more per call than per byte).
_FROM_RFC4648 = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", ALPHABET)
_BATCH = 640
_pool: list[str] = []
# A forked worker must not hand out its parent's refs (the same ref twice is one click lost).
os.register_at_fork(after_in_child=_pool.clear)


def make() -> str:
    if not _pool:
        text = base64.b32encode(os.urandom(_BATCH * LENGTH * 5 // 8)).decode()
        text = text.translate(_FROM_RFC4648)
        _pool.extend(text[i : i + LENGTH] for i in range(0, _BATCH * LENGTH, LENGTH))
    return _pool.pop()


def normalize(raw: str) -> str | None:
    """Canonical form of a ref someone sent back, or None if it cannot be one of ours."""
    candidate = raw.strip().upper().translate(LOOKALIKES).replace("-", "")
    return candidate if PATTERN.fullmatch(candidate) else None
