"""Pure-ASGI middleware kept cheap for the redirect hot path: body limit and security headers."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# What a redirect (any 3xx) gets. It has no content to sniff or frame, so nosniff and
# X-Frame-Options say nothing there; each header costs the short-link 302 about a microsecond
# in uvicorn. Its Referrer-Policy does count: it narrows what the messenger learns of the page
# the person came from (the redirected request keeps that page as its referrer).
REDIRECT_HEADERS = [
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"strict-transport-security", b"max-age=31536000"),
]
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), *REDIRECT_HEADERS]
FRAME_HEADERS = [(b"x-frame-options", b"DENY")]
# Pages of ours: our own stylesheet and images only; nothing may frame them.
PAGE_CSP = (
    b"default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; "
    b"form-action 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class SecurityHeaders:
    """Adds security headers to every response; HTML gets a strict CSP unless it set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        framable = scope["path"].startswith("/w/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name for name, _ in headers}
                redirect = 300 <= message["status"] < 400
                added = REDIRECT_HEADERS if redirect else SECURITY_HEADERS
                headers.extend(h for h in added if h[0] not in names)
                if not framable and not redirect:
                    headers.extend(h for h in FRAME_HEADERS if h[0] not in names)
                content_type = next((v for n, v in headers if n == b"content-type"), b"")
                if (
                    content_type.startswith(b"text/html")
                    and b"content-security-policy" not in names
                ):
                    headers.append((b"content-security-policy", PAGE_CSP))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Refuse bodies over the limit with 413, counting streamed bytes, not just Content-Length."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            # No body to count (a GET body is never read by our handlers).
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await self._refuse(send)
                return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "type": "/problems/too-large",
                "title": "Request body too large",
                "status": 413,
                "detail": f"the request body must be at most {self.limit} bytes",
                "errors": [{"field": "body", "message": f"at most {self.limit} bytes"}],
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass
