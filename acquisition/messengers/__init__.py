"""One adapter module per messenger, all with the same functions (see base.Messenger), and the
registry the rest of the service looks them up in by name."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from acquisition.errors import Invalid
from acquisition.messengers import instagram, messenger, telegram, viber, vk, whatsapp
from acquisition.messengers import max as max_bot
from acquisition.messengers.base import Event, Messenger

REGISTRY: dict[str, Messenger] = {
    "telegram": telegram,
    "whatsapp": whatsapp,
    "viber": viber,
    "messenger": messenger,
    "instagram": instagram,
    "vk": vk,
    "max": max_bot,
}
NAMES: tuple[str, ...] = tuple(REGISTRY)


def get(name: str) -> Messenger:
    """The adapter for `name`, or Invalid naming the field when it is not one we support."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise Invalid(
            f"unsupported messenger {name!r}; expected one of: {', '.join(NAMES)}",
            field="messenger",
        ) from None


# Two ref-shaped strings no real link holds: where each lands in a link is where every ref does.
_PROBES = ("ZZZZZZZZZZZZ", "YYYYYYYYYYYY")


@lru_cache(maxsize=4096)
def destination(name: str, handle: str, text: str | None) -> Callable[[str | None], str]:
    """`deep_link` of one channel and prefilled text, as a function of the ref alone.

    Every click builds the same link with a new ref, and encoding the query again costs more
    than the rest of the redirect's own work. The link is cut once around a probe ref and each
    ref pasted in; a link that does not carry the ref verbatim (none today) is built in full.
    """
    adapter = get(name)
    first, second = (adapter.deep_link(handle, probe, text) for probe in _PROBES)
    head, found, tail = first.partition(_PROBES[0])
    if not found or tail.count(_PROBES[0]) or second != head + _PROBES[1] + tail:
        return lambda ref: adapter.deep_link(handle, ref, text)

    def build(ref: str | None) -> str:
        return head + ref + tail if ref is not None else adapter.deep_link(handle, None, text)

    return build


__all__ = ["NAMES", "REGISTRY", "Event", "Messenger", "destination", "get"]
