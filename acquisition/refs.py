"""Refs: the opaque token a click carries into the messenger and gets back with the start.

A ref is 12 characters of Crockford base32 (60 random bits): it fits every messenger's payload
alphabet, and people can read it aloud or keep it in an edited WhatsApp message.
"""

from __future__ import annotations

import os
import re

from acquisition.codes import ALPHABET, LOOKALIKES

LENGTH = 12
PATTERN = re.compile(rf"[{ALPHABET}]{{{LENGTH}}}")


# Refs are cut from one string of random bytes, each byte mapped by its low 5 bits to a letter
# of the alphabet (256 is a multiple of 32, so every letter is equally likely and each of the 12
# characters carries 5 random bits). One getrandom() and one C-level translate per 640 refs:
# secrets.choice per character cost 16 us on the hot path, base64's pure-Python encoder 1.5 us.
_LETTERS = bytes(ord(ALPHABET[byte % 32]) for byte in range(256))  # a bytes.translate table
_BATCH = 640
_pool: list[str] = []
# A forked worker must not hand out its parent's refs (the same ref twice is one click lost).
os.register_at_fork(after_in_child=_pool.clear)


def make() -> str:
    if not _pool:
        text = os.urandom(_BATCH * LENGTH).translate(_LETTERS).decode()
        _pool.extend(text[i : i + LENGTH] for i in range(0, _BATCH * LENGTH, LENGTH))
    return _pool.pop()


def normalize(raw: str) -> str | None:
    """Canonical form of a ref someone sent back, or None if it cannot be one of ours."""
    candidate = raw.strip().upper().translate(LOOKALIKES).replace("-", "")
    return candidate if PATTERN.fullmatch(candidate) else None
