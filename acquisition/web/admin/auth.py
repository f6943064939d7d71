"""Signing in and out, and the language switch."""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from acquisition import accounts
from acquisition.models.accounts import User
from acquisition.web.admin import i18n, pages, security

MAX_EMAIL_INPUT = 320


async def login_form(request: Request) -> Response:
    if security.session_user(request) is not None:
        return pages.redirect(security.safe_next(request.query_params.get("next")))
    return _login_page(request, next_url=request.query_params.get("next"))


def _login_page(
    request: Request,
    status: int = 200,
    error: str | None = None,
    email: str = "",
    next_url: str | None = None,
    headers: dict[str, str] | None = None,
    retry: int = 0,
) -> Response:
    return pages.render(
        request,
        "admin/login.html",
        status=status,
        headers=headers,
        error=error,
        retry=retry,
        email=email,
        next=security.safe_next(next_url),
    )


async def login(request: Request) -> Response:
    try:
        form = await pages.read_form(request)
        security.check_csrf(request, form)
    except security.CsrfError:
        # A fresh token comes with the page: reloading it is all the person has to do.
        return _login_page(
            request, 403, "This form has expired. Please sign in again.", next_url=None
        )
    email = str(form.get("email") or "")[:MAX_EMAIL_INPUT]
    password = str(form.get("password") or "")
    next_url = str(form.get("next") or "")
    limiter = security.state(request).limiter
    verdict = await limiter.check(request, email)
    if not verdict.allowed:
        return _login_page(
            request,
            429,
            "Too many sign-in attempts. Try again in {seconds} s.",
            email,
            next_url,
            headers={"retry-after": str(verdict.retry_after)},
            retry=verdict.retry_after,
        )

    def check(session: Session) -> tuple[int, str, str | None] | None:
        user = accounts.authenticate(session, email, password)
        if user is None:
            return None
        return user.id, user.password_hash, accounts.upgraded_hash(user, password)

    found = await pages.reading(request, check)  # the slow hash holds no write lock
    if found is None:
        await limiter.failed(email)
        return _login_page(request, 401, "Wrong email or password.", email, next_url)
    user_id, password_hash, upgraded = found
    await pages.writing(request, lambda s: accounts.signed_in(s, user_id, upgraded))
    security.sign_in(request, user_id, upgraded or password_hash)
    return pages.redirect(security.safe_next(next_url))


@pages.page
async def logout(request: Request, user: User) -> Response:
    security.sign_out(request)
    return pages.redirect("/admin/login")


async def language(request: Request) -> Response:
    """Switch the language (a cookie; works signed in or not) and go back where the person was."""
    lang = request.path_params["lang"]
    back = security.safe_next(request.query_params.get("next"))
    if request.query_params.get("next", "").startswith("/admin/login"):
        back = "/admin/login"
    response = RedirectResponse(back, status_code=303, headers=security.HEADERS)
    if lang in i18n.LANGS:
        response.set_cookie(
            i18n.COOKIE,
            lang,
            max_age=365 * 24 * 3600,
            path="/admin",
            samesite="lax",
            httponly=True,
            secure=request.app.state.services.settings.base_url.startswith("https://"),
        )
    return response
