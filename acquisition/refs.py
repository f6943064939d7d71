"""Refs: the opaque token a click carries into the messenger and gets back with the start.

A ref is 12 characters of Crockford base32: it fits every messenger's payload alphabet, and
people can read it aloud or keep it in an edited WhatsApp message. The first 4 characters
stamp the time (1/16 s steps, repeating every ~18 hours), the other 8 are random (40 bits).

Why a stamp: every click is inserted into the unique index on (ref, at). Fully random refs land
on random pages of that index, so each drained click dirtied a page of its own: measured on
150k clicks, 27 us of CPU per click (10 us of it writing pages) against 14 us with stamped
refs, and the gap widens as the table outgrows memory. Stamped refs land side by side, like
any time-ordered key. Guessing stays hopeless (a guess that knows the stamp still faces 2^40
suffixes), and the chance of two equal refs is the same as with 60 random bits: the stamp only
sorts them, over time every stamp value is used alike.

60 bits are not unique forever: at ten million clicks a day two clicks share a ref a few
times a year, months apart (within the same sixteenth of a second it would take 2^40
clicks). So a click is keyed by its ref and its time, both are stored, and a start that
brings the ref is the latest click's.
"""

from __future__ import annotations

import os
import re
import time

from acquisition.codes import ALPHABET, LOOKALIKES

LENGTH = 12
STAMP = 4  # characters of time stamp; ALPHABET is in ASCII order, so they sort like the time
PATTERN = re.compile(rf"[{ALPHABET}]{{{LENGTH}}}")


# Suffixes are cut from one string of random bytes, each byte mapped by its low 5 bits to a
# letter of the alphabet (256 is a multiple of 32, so every letter is equally likely and each
# character carries 5 random bits). One getrandom() and one C-level translate per 640 refs:
# secrets.choice per character cost 16 us on the hot path, base64's pure-Python encoder 1.5 us.
_LETTERS = bytes(ord(ALPHABET[byte % 32]) for byte in range(256))  # a bytes.translate table
_RANDOM = LENGTH - STAMP
_BATCH = 640
_pool: list[str] = []
_stamp = (-1, "")  # (time step, its characters): recomputed 16 times a second at most
# A forked worker must not hand out its parent's refs (the same ref twice is one click lost).
os.register_at_fork(after_in_child=_pool.clear)


def make() -> str:
    global _stamp
    if not _pool:
        text = os.urandom(_BATCH * _RANDOM).translate(_LETTERS).decode()
        _pool.extend(text[i : i + _RANDOM] for i in range(0, _BATCH * _RANDOM, _RANDOM))
    step = int(time.time() * 16)
    if step != _stamp[0]:
        _stamp = (step, stamp(step))
    return _stamp[1] + _pool.pop()


def stamp(step: int) -> str:
    """The 4 characters of a time step (its low 20 bits, most significant first)."""
    return "".join(ALPHABET[(step >> shift) & 31] for shift in (15, 10, 5, 0))


def normalize(raw: str) -> str | None:
    """Canonical form of a ref someone sent back, or None if it cannot be one of ours."""
    candidate = raw.strip().upper().translate(LOOKALIKES).replace("-", "")
    return candidate if PATTERN.fullmatch(candidate) else None
