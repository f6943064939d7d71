"""Channels: the list, a setup form per messenger, and the page that tells exactly what to
register with the platform (webhook URL, secrets). Secrets are shown in full once, on the page
that answers the form which created them."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from acquisition import channels, messengers
from acquisition.errors import AcquisitionError, NotFound
from acquisition.models import LinkChannel
from acquisition.models.accounts import User
from acquisition.web.admin import pages

# Credentials the business chooses itself (we make a strong one when left blank); the others
# (app secrets, tokens, VK's confirmation string) are issued by the platform and copied from it.
CHOSEN = {"secret", "verify_token"}
# Where each messenger's pieces come from, and what to do with them (shown on the pages).
GUIDE: dict[str, dict[str, Any]] = {
    "telegram": {
        "handle": "Bot username, e.g. @shop_bot (from @BotFather)",
        "credentials": {"secret": "Webhook secret token (leave blank to generate one)"},
        "steps": [
            "Create the bot with @BotFather and copy its username and token.",
            "Call setWebhook with the URL and the secret token below (the command is ready to "
            "copy; put your bot token in place of <token>).",
        ],
    },
    "whatsapp": {
        "handle": "Business phone number in international format, e.g. +7 916 000-11-22",
        "credentials": {
            "app_secret": "App secret (Meta App Dashboard → App settings → Basic)",
            "verify_token": "Verify token (leave blank to generate one)",
        },
        "steps": [
            "In the Meta App Dashboard open WhatsApp → Configuration.",
            "Set the callback URL and the verify token below, then subscribe to the fields "
            "messages and user_preferences.",
        ],
    },
    "messenger": {
        "handle": "Facebook page username, e.g. mybakery",
        "credentials": {
            "app_secret": "App secret (Meta App Dashboard → App settings → Basic)",
            "verify_token": "Verify token (leave blank to generate one)",
        },
        "steps": [
            "In the Meta App Dashboard open Messenger → Settings → Webhooks.",
            "Set the callback URL and the verify token below and subscribe the page to "
            "messages, messaging_postbacks, messaging_referrals and messaging_optins.",
        ],
    },
    "instagram": {
        "handle": "Instagram account username, e.g. my.bakery",
        "credentials": {
            "app_secret": "App secret (Meta App Dashboard → App settings → Basic)",
            "verify_token": "Verify token (leave blank to generate one)",
        },
        "steps": [
            "In the Meta App Dashboard open Instagram → Webhooks.",
            "Set the callback URL and the verify token below and subscribe to messages and "
            "messaging_postbacks.",
        ],
    },
    "viber": {
        "handle": "Bot URI (chatURI), e.g. mybakery",
        "credentials": {"auth_token": "Authentication token (Viber Admin Panel → your bot)"},
        "steps": [
            "Copy the bot's authentication token from the Viber Admin Panel.",
            "Register the webhook URL below with set_webhook (the request is ready to copy).",
        ],
    },
    "vk": {
        "handle": "Community short name, e.g. mybakery",
        "credentials": {
            "secret": "Secret key (leave blank to generate one)",
            "confirmation": "Confirmation string VK shows on the Callback API page",
        },
        "steps": [
            "In the community open Manage → API usage → Callback API.",
            "Add the server URL and the secret key below; copy the confirmation string VK "
            "shows into this channel; enable message_new, message_allow and message_deny.",
        ],
    },
    "max": {
        "handle": "Bot username, e.g. shop_bot",
        "credentials": {"secret": "Webhook secret (leave blank to generate one)"},
        "steps": [
            "Create the bot in MAX and copy its token.",
            "Subscribe the webhook URL below with the secret (the request is ready to copy).",
        ],
    },
}
MESSENGERS = tuple(name for name in messengers.NAMES if name in GUIDE)


def command(messenger: str, url: str, credentials: dict[str, str]) -> str | None:
    """A request to paste into a terminal, for the platforms that register webhooks by API
    (the others are set up in their dashboards, as the steps say)."""
    secret = credentials.get("secret", "<secret>")
    if messenger == "telegram":
        return (
            f"curl -sS https://api.telegram.org/bot<token>/setWebhook \\\n"
            f'  -F "url={url}" \\\n'
            f'  -F "secret_token={secret}" \\\n'
            """  -F 'allowed_updates=["message","my_chat_member"]'"""
        )
    if messenger == "viber":
        token = credentials.get("auth_token", "<auth token>")
        return (
            "curl -sS https://chatapi.viber.com/pa/set_webhook \\\n"
            f'  -H "X-Viber-Auth-Token: {token}" \\\n'
            f"""  -d '{{"url": "{url}", "event_types": ["conversation_started", """
            """"subscribed", "unsubscribed"], "send_name": true}'"""
        )
    if messenger == "max":
        return (
            "curl -sS https://platform-api2.max.ru/subscriptions \\\n"
            '  -H "Authorization: <bot token>" -H "Content-Type: application/json" \\\n'
            f"""  -d '{{"url": "{url}", "update_types": ["bot_started", "bot_stopped", """
            f""""message_created"], "secret": "{secret}"}}'"""
        )
    return None


def _linked_counts(session: Session) -> dict[int, int]:
    rows = session.execute(
        select(LinkChannel.channel_id, func.count()).group_by(LinkChannel.channel_id)
    )
    return {cid: int(n) for cid, n in rows}


@pages.page
async def index(request: Request, user: User) -> Response:
    base = request.app.state.services.settings.base_url

    def work(session: Session) -> tuple[list[dict[str, Any]], dict[int, int]]:
        found = [channels.public(c, base) for c in channels.list_all(session)]
        return found, _linked_counts(session)

    rows, counts = await pages.reading(request, work)
    return pages.render(
        request, "admin/channels.html", rows=rows, counts=counts, adapters=messengers.REGISTRY
    )


def _adapter(request: Request) -> Any:
    name = request.query_params.get("messenger") or request.path_params.get("messenger")
    return messengers.REGISTRY.get(name or "")


def _new_page(request: Request, adapter: Any, form: pages.Form, status: int = 200) -> Response:
    return pages.render(
        request,
        "admin/channel_new.html",
        status=status,
        adapter=adapter,
        adapters=messengers.REGISTRY,
        choices=MESSENGERS,
        guide=GUIDE.get(adapter.NAME) if adapter else None,
        form=form,
    )


@pages.page
async def new(request: Request, user: User) -> Response:
    return _new_page(request, _adapter(request), pages.Form())


def _spec_data(form: Any, adapter: Any) -> dict[str, Any]:
    credentials = {}
    for key in adapter.CREDENTIALS:
        value = pages.text_value(form, f"credentials.{key}", 1000)
        if value is not None:
            credentials[key] = value.strip()
        elif key in CHOSEN:
            credentials[key] = secrets.token_urlsafe(24)
    return {
        "messenger": adapter.NAME,
        "handle": pages.text_value(form, "handle", 400),
        "name": pages.text_value(form, "name", 400),
        "credentials": credentials,
        "relay_url": pages.text_value(form, "relay_url", 1000),
        "welcome_text": pages.text_value(form, "welcome_text", 2000),
    }


@pages.page
async def create(request: Request, user: User) -> Response:
    form_data = await pages.read_form(request)
    adapter = messengers.REGISTRY.get(str(form_data.get("messenger") or ""))
    if adapter is None:
        return _new_page(request, None, pages.Form(summary="Choose a messenger."), 422)
    shown = pages.values_of(
        form_data,
        ["handle", "name", "relay_url", "welcome_text"]
        + [f"credentials.{k}" for k in adapter.CREDENTIALS],
    )
    base = request.app.state.services.settings.base_url
    networks = request.app.state.services.settings.relay_private_networks

    def work(session: Session) -> dict[str, Any]:
        channel = channels.create(
            session, channels.parse(_spec_data(form_data, adapter), relay_networks=networks)
        )
        return channels.public(channel, base, reveal=True)

    try:
        created = await pages.writing(request, work)
    except AcquisitionError as error:
        return _new_page(request, adapter, pages.Form(values=shown).fail(error), 422)
    # Answered here, not after a redirect: this is the one page that shows the secrets.
    return _detail_page(request, created, revealed=True, status=201)


def _detail_page(
    request: Request,
    channel: dict[str, Any],
    revealed: bool = False,
    status: int = 200,
    form: pages.Form | None = None,
    links: int = 0,
) -> Response:
    adapter = messengers.REGISTRY[channel["messenger"]]
    return pages.render(
        request,
        "admin/channel.html",
        status=status,
        channel=channel,
        adapter=adapter,
        guide=GUIDE.get(adapter.NAME, {}),
        command=command(adapter.NAME, channel["webhook"]["url"], channel["credentials"]),
        revealed=revealed,
        links=links,
        form=form
        or pages.Form(
            values={
                "name": channel["name"],
                "relay_url": channel["relay_url"] or "",
                "welcome_text": channel["welcome_text"] or "",
            }
        ),
    )


def _path_id(request: Request) -> int:
    raw = request.path_params["id"]
    if not raw.isdecimal() or len(raw) > 9:
        raise NotFound("no such channel", field="id")
    return int(raw)


@pages.page
async def detail(request: Request, user: User) -> Response:
    base = request.app.state.services.settings.base_url
    channel_id = _path_id(request)

    def work(session: Session) -> tuple[dict[str, Any], int]:
        found = channels.public(channels.get(session, channel_id), base)
        return found, _linked_counts(session).get(channel_id, 0)

    try:
        found, count = await pages.reading(request, work)
    except NotFound:
        return pages.render(request, "admin/error.html", status=404, message="No such channel.")
    return _detail_page(request, found, links=count)


@pages.page
async def update(request: Request, user: User) -> Response:
    """Change the name, relay, welcome text, or replace credentials (blank keeps them)."""
    base = request.app.state.services.settings.base_url
    networks = request.app.state.services.settings.relay_private_networks
    channel_id = _path_id(request)
    form_data = await pages.read_form(request)
    changes: dict[str, Any] = {
        "name": pages.text_value(form_data, "name", 400) or "",
        "relay_url": pages.text_value(form_data, "relay_url", 1000),
        "welcome_text": pages.text_value(form_data, "welcome_text", 2000),
    }
    credentials = {
        key.removeprefix("credentials."): value.strip()
        for key, value in form_data.items()
        if key.startswith("credentials.") and isinstance(value, str) and value.strip()
    }
    if credentials:
        changes["credentials"] = credentials

    def work(session: Session) -> dict[str, Any]:
        channel = channels.update(session, channels.get(session, channel_id), changes, networks)
        return channels.public(channel, base, reveal=bool(credentials))

    try:
        updated = await pages.writing(request, work)
    except NotFound:
        return pages.render(request, "admin/error.html", status=404, message="No such channel.")
    except AcquisitionError as error:
        current = await pages.reading(
            request, lambda s: channels.public(channels.get(s, channel_id), base)
        )
        shown = pages.Form(values=pages.values_of(form_data, changes)).fail(error)
        return _detail_page(request, current, status=422, form=shown)
    if credentials:
        return _detail_page(request, updated, revealed=True)
    pages.flash(request, "Channel saved.")
    return pages.redirect(f"/admin/channels/{channel_id}")
