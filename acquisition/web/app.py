"""create_app(settings): routes, middleware, the lifespan that owns the engine and click writer."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import OperationalError, TimeoutError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from acquisition.clicks import ClickWriter
from acquisition.config import Settings
from acquisition.db import Database, connect
from acquisition.errors import AcquisitionError
from acquisition.web import api, problems, redirect
from acquisition.web.middleware import BodyLimit, SecurityHeaders

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent


@dataclass
class Services:
    """Everything a request handler needs, built once per process in the lifespan."""

    settings: Settings
    db: Database
    clicks: ClickWriter
    links: redirect.LinkCache
    templates: Jinja2Templates


def create_app(settings: Settings, database: Database | None = None) -> Starlette:
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = database or connect(settings)
        writer = ClickWriter(db.engine)
        writer.start()
        app.state.services = Services(
            settings, db, writer, redirect.LinkCache(db, settings.link_cache_seconds), templates
        )
        try:
            yield
        finally:
            # Requests have drained by now (uvicorn waits for them): flush the last clicks.
            writer.close()
            if database is None:
                db.dispose()

    routes: list[BaseRoute] = [
        Route("/healthz", redirect.health, methods=["GET", "HEAD"]),
        Mount("/api/v1", routes=api.routes),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
        *redirect.routes,
    ]
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
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


def create_app_from_env() -> Starlette:
    """The uvicorn factory used by `acquisition serve` (each worker builds its own app)."""
    return create_app(Settings.from_env())
