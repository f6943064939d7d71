"""Site origins (`scheme://host[:port]`): the sites allowed to embed a widget, written the way
browsers send them in the Origin header, so that comparing is plain string equality."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from acquisition.errors import Invalid

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def parse(value: object, field: str = "origin") -> str:
    """`scheme://host[:port]` as browsers send it in the Origin header: lower case, no default
    port, international names in their xn-- form."""
    hint = "must be an origin such as https://example.org (scheme, host and port; no path)"
    if not isinstance(value, str) or not value or len(value) > 200:
        raise Invalid(hint, field=field)
    if not value.isascii() or not value.isprintable() or " " in value:
        raise Invalid(hint + "; write an international domain name in its xn-- form", field)
    parts = urlsplit(value.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or parts.path not in ("", "/"):
        raise Invalid(hint, field=field)
    if parts.query or parts.fragment or "?" in value or "#" in value or "@" in parts.netloc:
        raise Invalid(hint, field=field)
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        raise Invalid(hint + "; the port must be a number up to 65535", field=field) from None
    if host.startswith("[") or ":" in host:
        try:
            host = f"[{ipaddress.IPv6Address(host.strip('[]')).compressed}]"
        except ValueError:
            raise Invalid(hint, field=field) from None
    elif not host or len(host) > 253 or not all(_LABEL.fullmatch(x) for x in host.split(".")):
        raise Invalid(hint, field=field)
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def of_url(url: str) -> str | None:
    """The origin of a page URL, or None when it has none we accept."""
    try:
        parts = urlsplit(url)
        return parse(f"{parts.scheme}://{parts.netloc}")
    except (Invalid, ValueError):
        return None
