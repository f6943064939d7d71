"""How admin handlers answer: the signed-in user, the database at the edge, templates with the
language, the CSRF token and the admin's security headers, form parsing, CSV files."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, wraps
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.templating import Jinja2Templates

from acquisition import accounts
from acquisition.errors import AcquisitionError, FieldError
from acquisition.models.accounts import User
from acquisition.subscribers import escape_cell
from acquisition.web.admin import i18n, security

T = TypeVar("T")
WEB = Path(__file__).resolve().parent.parent
STATIC = WEB / "static" / "admin"
templates = Jinja2Templates(directory=str(WEB / "templates"))
MAX_FORM_FIELDS = 200
MAX_FORM_FILES = 1


@dataclass
class Form:
    """A submitted (or to be shown) form: values by input name, and the problems found."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    summary: str | None = None

    def get(self, name: str, default: Any = "") -> Any:
        value = self.values.get(name)
        return default if value is None else value

    def error(self, name: str) -> str | None:
        """The problem with an input; `channels` also finds `channels.0`."""
        if name in self.errors:
            return self.errors[name]
        return next((m for f, m in self.errors.items() if f.startswith(name + ".")), None)

    def fail(self, error: AcquisitionError) -> Form:
        self.summary = error.message
        for problem in error.errors:
            self.errors.setdefault(problem.field or "", problem.message)
        return self


def db(request: Request) -> Any:
    return request.app.state.services.db


async def reading(request: Request, work: Callable[[Session], T]) -> T:
    database = db(request)

    def run() -> T:
        with database.reader() as session:
            return work(session)

    return await run_in_threadpool(run)


async def writing(request: Request, work: Callable[[Session], T]) -> T:
    """Run `work` in one transaction and commit; an exception rolls everything back."""
    database = db(request)

    def run() -> T:
        with database.writer.begin() as session:
            return work(session)

    return await run_in_threadpool(run)


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/admin/login?" + urlencode({"next": target})


Handler = Callable[[Request, User], Awaitable[Response]]


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Admin pages: a signed-in user (else to the sign-in page) and, on a POST, a valid CSRF
    token (else 403, nothing done). The handler receives the user."""

    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        known = security.session_user(request)
        user = None
        if known is not None:
            user = await reading(request, lambda s: accounts.get(s, known[0]))
            if user is not None and security.password_mark(user.password_hash) != known[1]:
                user = None  # the password changed since: every session ends
        if user is None:
            security.sign_out(request)
            if request.method != "GET":
                return forbidden(request, "Your session has ended. Please sign in again.")
            return RedirectResponse(login_url(request), status_code=303)
        request.state.user = user
        if request.method == "POST":
            try:
                form = await read_form(request)
                security.check_csrf(request, form)
            except security.CsrfError:
                return forbidden(request, "This form has expired. Reload the page and try again.")
        return await handler(request, user)

    return endpoint


async def read_form(request: Request) -> FormData:
    """The request's form, read once (handlers may ask again)."""
    cached: FormData | None = getattr(request.state, "form", None)
    if cached is None:
        try:
            cached = await request.form(max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS)
        except HTTPException as error:
            raise security.CsrfError(f"unreadable form: {error.detail}") from None
        request.state.form = cached
    return cached


def forbidden(request: Request, message: str) -> Response:
    return render(request, "admin/error.html", status=403, message=message)


@cache
def _static_version(name: str) -> str:
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:10]


def static(name: str) -> str:
    """A vendored file's URL with its content hash, so a new release is never served stale."""
    return f"/static/admin/{name}?v={_static_version(name)}"


def context(request: Request) -> dict[str, Any]:
    lang = i18n.negotiate(request)
    return {
        "lang": lang,
        "t": i18n.translator(lang),
        "fmt": i18n.Formats(lang),
        "csrf": security.csrf_token(request),
        "user": getattr(request.state, "user", None),
        "static": static,
        "path": request.url.path,
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        "base_url": request.app.state.services.settings.base_url,
        "flash": request.session.pop("flash", None),
    }


def render(
    request: Request,
    template: str,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **values: Any,
) -> Response:
    return templates.TemplateResponse(
        request,
        template,
        {**context(request), **values},
        status_code=status,
        headers={**security.HEADERS, **(headers or {})},
    )


def flash(request: Request, message: str) -> None:
    """A one-line notice for the next page (kept in the signed session: no secrets here)."""
    request.session["flash"] = message


def redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers=security.HEADERS)


# --- forms -------------------------------------------------------------------------------------

_DIGITS = re.compile(r"[0-9]{1,12}")


def text_value(form: FormData, name: str, limit: int = 5000) -> str | None:
    """A text input: None when blank. Longer than any field allows is cut to `limit`, so the
    domain parser still names the field instead of us failing on it."""
    value = form.get(name)
    if not isinstance(value, str):
        return None
    value = value.replace("\r\n", "\n")[:limit]
    return value if value.strip() else None


def id_value(form: FormData | Mapping[str, Any], name: str) -> int | str | None:
    """An id from a select or an input: an int when it is one, else the text (the parser then
    says it must be a whole number)."""
    value = form.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    return int(value) if _DIGITS.fullmatch(value) else value


def id_list(form: FormData, name: str) -> list[int | str]:
    found: list[int | str] = []
    for value in form.getlist(name)[:50]:
        if isinstance(value, str) and value.strip():
            found.append(int(value) if _DIGITS.fullmatch(value.strip()) else value.strip())
    return found


def values_of(form: FormData, names: Iterable[str]) -> dict[str, Any]:
    return {name: form.get(name) for name in names if isinstance(form.get(name), str)}


def field_errors(errors: Sequence[FieldError]) -> dict[str, str]:
    result: dict[str, str] = {}
    for problem in errors:
        result.setdefault(problem.field or "", problem.message)
    return result


# --- CSV ---------------------------------------------------------------------------------------


def csv_response(name: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Response:
    """A CSV download; cells a spreadsheet would run as formulas are neutralised."""

    def lines() -> Iterable[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        buffer.write("\ufeff")  # Excel reads UTF-8 (Cyrillic names) only with a BOM
        writer.writerow(header)
        for row in rows:
            writer.writerow([escape_cell(_cell(value)) for value in row])
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={
            **security.HEADERS,
            "content-disposition": f'attachment; filename="{name}"',
        },
    )


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
