"""One adapter module per messenger, all with the same functions (see base.Messenger), and the
registry the rest of the service looks them up in by name."""

from __future__ import annotations

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


__all__ = ["NAMES", "REGISTRY", "Event", "Messenger", "get"]
