"""create_app(settings): routes, middleware, the lifespan that owns the engine and click writer."""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError, TimeoutError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from acquisition import logs, metrics, optins
from acquisition.clicks import ClickSpool
from acquisition.config import Settings
from acquisition.db import Database, connect
from acquisition.errors import AcquisitionError
from acquisition.relay import Policy, RelayLoop
from acquisition.rollups import Refresher
from acquisition.web import admin, api, beacons, codes, hooks, problems, redirect, reports, widget
from acquisition.web.middleware import BodyLimit, SecurityHeaders
from acquisition.web.ratelimit import Blocklist, RateLimit

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent


@dataclass
class Services:
    """Everything a request handler needs, built once per process in the lifespan."""

    settings: Settings
    db: Database
    clicks: ClickSpool
    links: redirect.LinkCache
    templates: Jinja2Templates


class App(Starlette):
    """The app, with the short-link front (`redirect.ShortLinks`) ahead of all of Starlette's
    stack, its own error wrapper included: that wrapper wraps every send, and a click on a
    link is the one request where that counts (interleaved keep-alive rounds of
    tests/bench/redirect_bench.py: 1.04x the throughput without it)."""

    def __init__(self, *, front: Callable[[ASGIApp], ASGIApp], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.front = front(super().__call__)  # what the front does not answer: the stack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self  # (the stack sets it too, for what goes down)
        await self.front(scope, receive, send)


def create_app(
    settings: Settings, database: Database | None = None, *, freeze_heap: bool = False
) -> App:
    """`freeze_heap`: for a worker process (not an app among many, as in tests), see below."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = database or connect(settings)
        # Starts that arrived before their click left the spool get attributed as it lands.
        writer = ClickSpool(settings.spool_path, db.engine, on_stored=optins.resolver(db))
        writer.start()
        app.state.services = Services(
            settings, db, writer, redirect.LinkCache(db, settings.link_cache_seconds), templates
        )
        # Forwards queued webhook bodies to the channels' own bot backends.
        relay = app.state.relay = RelayLoop(db, Policy(private=settings.relay_private_networks))
        relay.start()
        # Keeps the dashboard's daily rollup current (app.state.rollups.poke() to refresh now).
        refresher = app.state.rollups = Refresher(db)
        refresher.start()
        if freeze_heap:
            # What start-up built lives as long as the worker: hide it from the garbage
            # collector, so that a full collection scans only what requests leave behind. It
            # scanned some 115k start-up objects and held every click in flight for ~90 ms,
            # a few times a minute under load.
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            await refresher.stop()
            await relay.stop()
            # Requests have drained by now (uvicorn waits for them): flush the last clicks.
            await writer.close()
            if database is None:
                db.dispose()

    # Order matters: the short-link routes are the hot path and come first; their pattern takes
    # only one dot-free segment that is not a route word, so they shadow nothing below.
    routes: list[BaseRoute] = [
        Route("/healthz", redirect.health, methods=["GET", "HEAD"]),
        Route("/metrics", metrics.Endpoint(settings.trusted_proxies), methods=["GET"]),
        *redirect.routes,  # one-segment codes only: cannot shadow anything below
        *widget.routes,  # /w/{id}.js, /w/{id}/qr/{code}.svg
        *beacons.routes,  # /w/{id}/e
        *codes.routes,  # /{code}.svg|png|pdf: before /{code}, which matches dots too
        *admin.routes(settings),  # /admin/...: its own session cookie; before /{code}
        *redirect.fallback,
        *hooks.routes,
        Mount(
            "/api/v1", routes=[*api.routes, *reports.routes, *codes.api_routes, *widget.api_routes]
        ),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    blocklist = Blocklist(settings)  # addresses over their miss budget (see ratelimit)
    return App(
        front=functools.partial(
            redirect.ShortLinks, trusted=settings.trusted_proxies, blocklist=blocklist
        ),
        routes=routes,
        middleware=[
            Middleware(logs.AccessLog, trusted=settings.trusted_proxies),
            Middleware(metrics.Metrics),
            Middleware(SecurityHeaders),
            Middleware(RateLimit, settings=settings, blocklist=blocklist),
            Middleware(BodyLimit, limit=settings.max_body_bytes),
        ],
        exception_handlers={
            AcquisitionError: problems.domain_error,
            OperationalError: problems.store_unavailable,
            TimeoutError: problems.store_unavailable,
            Exception: problems.unexpected,
        },
        lifespan=lifespan,
    )


# Allocations between two collections of young objects in a worker (Python's default: 700).
YOUNG_COLLECTION = 10_000


def create_app_from_env() -> App:
    """The uvicorn factory used by `acquisition serve` (each worker builds its own app)."""
    # The click drainer (and the relay and rollup threads) run Python between their database
    # calls; by default a thread keeps the GIL for up to 5 ms before handing it over, a wait
    # that would sit on every redirect in flight.
    sys.setswitchinterval(0.0005)
    # Every redirect waits for its group's fdatasync, so the objects of the requests in flight
    # (~30 each) are alive at any moment. At the default threshold a young collection came
    # every 700 allocations, walked them all again and promoted them into the older
    # generations: 5.3 us of the event loop's time per click, against 0.2 us at this one
    # (tests/bench/gc_bench.py).
    gc.set_threshold(YOUNG_COLLECTION, *gc.get_threshold()[1:])
    return create_app(Settings.from_env(), freeze_heap=True)
