"""The widget builder: channels, texts, colours, position, page rules, consent wording, allowed
site origins; a live preview of the real widget script in the page; the snippet to copy.

The preview is the widget's own script (web/widget.py's template) with a config made from the
form as it is now, served from /admin (same origin: the admin's CSP allows it). It never counts:
it has no beacon, its links lead back here, and the page cancels its clicks.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.datastructures import FormData, ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import Response

from acquisition import channels, links, messengers, qr, widgets
from acquisition.errors import AcquisitionError, Invalid, NotFound
from acquisition.models.accounts import User
from acquisition.web import widget as served
from acquisition.web.admin import pages, security

TEXT_LANGS = ("en", "ru")
TEXT_KEYS = ("cta", "title")
PREVIEW_ID = "preview"


def _lines(form: Any, name: str, limit: int = 50) -> list[str]:
    raw = form.get(name)
    if not isinstance(raw, str):
        return []
    return [line.strip() for line in raw.replace("\r\n", "\n").split("\n") if line.strip()][:limit]


def _number(form: Any, name: str) -> int | str | None:
    raw = form.get(name)
    if not isinstance(raw, str) or not raw.strip():
        return None
    raw = raw.strip()
    return int(raw) if raw.isdecimal() and len(raw) < 9 else raw


def widget_data(form: Any) -> dict[str, Any]:
    """The form as the API's widget body (widgets.parse names the same fields)."""
    texts: dict[str, dict[str, str]] = {}
    for lang in TEXT_LANGS:
        own = {key: form.get(f"texts.{lang}.{key}") for key in TEXT_KEYS}
        own = {k: v for k, v in own.items() if isinstance(v, str) and v.strip()}
        if own:
            texts[lang] = own
    version = form.get("consent.version")
    consent = None
    if isinstance(version, str) and version.strip():
        wording = {
            lang: form.get(f"consent.text.{lang}")
            for lang in TEXT_LANGS
            if isinstance(form.get(f"consent.text.{lang}"), str)
            and form.get(f"consent.text.{lang}").strip()
        }
        consent = {"version": version.strip(), "text": wording}
    data: dict[str, Any] = {
        "name": pages.text_value(form, "name", 500),
        "channels": [
            int(v) if str(v).isdecimal() and len(str(v)) < 10 else v
            for v in form.getlist("channels")[:20]
            if str(v).strip()
        ],
        "origins": _lines(form, "origins"),
        "layout": form.get("layout") or None,
        "position": form.get("position") or None,
        "lang": form.get("lang") or None,
        "color": (form.get("color") or "").upper() or None,
        "text_color": (form.get("text_color") or "").upper() or None,
        "delay": _number(form, "delay"),
        "scroll": _number(form, "scroll"),
        "include": _lines(form, "include"),
        "exclude": _lines(form, "exclude"),
        "texts": texts,
        "consent": consent,
        "whatsapp_qr": form.get("whatsapp_qr") == "1",
    }
    return data


def form_values(data: dict[str, Any]) -> dict[str, Any]:
    """A stored widget (or defaults) as the form's input values."""
    values: dict[str, Any] = {
        "name": data.get("name") or "",
        "channels": list(data.get("channels") or []),
        "origins": "\n".join(data.get("origins") or []),
        "layout": data.get("layout") or "panel",
        "position": data.get("position") or "right",
        "lang": data.get("lang") or "auto",
        "color": data.get("color") or "#2AABEE",
        "text_color": data.get("text_color") or "#FFFFFF",
        "delay": data.get("delay") or 0,
        "scroll": data.get("scroll") or 0,
        "include": "\n".join(data.get("include") or []),
        "exclude": "\n".join(data.get("exclude") or []),
        "whatsapp_qr": bool(data.get("whatsapp_qr")),
    }
    for lang, own in (data.get("texts") or {}).items():
        for key, text in own.items():
            values[f"texts.{lang}.{key}"] = text
    consent = data.get("consent")
    if consent:
        values["consent.version"] = consent["version"]
        for lang, text in consent["text"].items():
            values[f"consent.text.{lang}"] = text
    return values


def _shown(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {
        key: value for key, value in form.multi_items() if isinstance(value, str)
    }
    values["channels"] = [
        int(v) for v in form.getlist("channels") if isinstance(v, str) and v.isdecimal()
    ][:20]
    values["whatsapp_qr"] = form.get("whatsapp_qr") == "1"
    values.pop(security.CSRF_FIELD, None)
    return values


def preview_query(values: dict[str, Any]) -> str:
    pairs: list[tuple[str, str]] = []
    for key, value in values.items():
        if key == "channels":
            pairs.extend(("channels", str(v)) for v in value)
        elif key == "whatsapp_qr":
            if value:
                pairs.append((key, "1"))
        elif key not in (security.CSRF_FIELD, "origins", "include", "exclude", "name"):
            pairs.append((key, str(value)))
    return urlencode(pairs)


@pages.page
async def index(request: Request, user: User) -> Response:
    base = request.app.state.services.settings.base_url
    rows = await pages.reading(
        request, lambda s: [widgets.public(w, base) for w in widgets.list_all(s)]
    )
    return pages.render(request, "admin/widgets.html", rows=rows)


async def _builder(
    request: Request,
    form: pages.Form,
    widget: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    known = await pages.reading(
        request, lambda s: [(c.id, c.name, c.messenger) for c in channels.list_all(s)]
    )
    query = preview_query(form.values)
    if widget is not None:
        query += "&" + urlencode({"id": widget["id"]})
    return pages.render(
        request,
        "admin/widget.html",
        status=status,
        form=form,
        widget=widget,
        channels=known,
        preview=f"/admin/widgets/preview.js?{query}",
        style_hash=served.template().style_hash,
        langs=TEXT_LANGS,
    )


@pages.page
async def new(request: Request, user: User) -> Response:
    return await _builder(request, pages.Form(values=form_values({})))


@pages.page
async def create(request: Request, user: User) -> Response:
    form = await pages.read_form(request)
    data = widget_data(form)

    def work(session: Session) -> str:
        return widgets.create(session, widgets.parse(data)).public_id

    try:
        public_id = await pages.writing(request, work)
    except AcquisitionError as error:
        return await _builder(request, pages.Form(values=_shown(form)).fail(error), status=422)
    pages.flash(request, "Widget saved. Copy the snippet into your site.")
    return pages.redirect(f"/admin/widgets/{public_id}")


async def _widget(request: Request) -> dict[str, Any] | None:
    base = request.app.state.services.settings.base_url
    public_id = request.path_params["id"]

    def work(session: Session) -> dict[str, Any] | None:
        try:
            return widgets.public(widgets.get(session, public_id), base)
        except NotFound:
            return None

    return await pages.reading(request, work)


@pages.page
async def detail(request: Request, user: User) -> Response:
    widget = await _widget(request)
    if widget is None:
        return pages.render(request, "admin/error.html", status=404, message="No such widget.")
    return await _builder(request, pages.Form(values=form_values(widget)), widget)


@pages.page
async def update(request: Request, user: User) -> Response:
    widget = await _widget(request)
    if widget is None:
        return pages.render(request, "admin/error.html", status=404, message="No such widget.")
    form = await pages.read_form(request)
    data = widget_data(form)

    def work(session: Session) -> None:
        widgets.update(session, widgets.get(session, widget["id"]), data)

    try:
        await pages.writing(request, work)
    except AcquisitionError as error:
        shown = pages.Form(values=_shown(form)).fail(error)
        return await _builder(request, shown, widget, status=422)
    served.cached(request).forget(widget["id"])
    pages.flash(request, "Widget saved. Sites get the change within minutes.")
    return pages.redirect(f"/admin/widgets/{widget['id']}")


# --- the live preview ----------------------------------------------------------------------


def preview_config(session: Session, params: Any, origin: str, base_url: str) -> dict[str, Any]:
    """The script config for the form as it is now; Invalid names what stops a preview."""
    data = widget_data(params)
    data["origins"] = ["https://preview.invalid"]  # not needed to look at it
    data["include"] = data["exclude"] = []
    data["delay"] = data["scroll"] = 0  # shown at once, whatever the site will do
    spec = widgets.parse(data)
    known = channels.get_many(session, spec.channels)
    missing = [i for i, cid in enumerate(spec.channels) if cid not in known]
    if missing:
        raise Invalid("no such channel", field=f"channels.{missing[0]}")
    codes: dict[int, str] = {}
    public_id = params.get("id")
    if isinstance(public_id, str) and widgets.PUBLIC_ID.fullmatch(public_id):
        try:
            saved = widgets.get(session, public_id)
            codes = {wl.channel_id: wl.link.code for wl in saved.links}
        except NotFound:
            pass
    kinds = [known[cid].messenger for cid in spec.channels]
    buttons = []
    for cid in spec.channels:
        adapter = messengers.get(known[cid].messenger)
        label = adapter.LABEL
        if kinds.count(adapter.NAME) > 1:
            label = f"{adapter.LABEL}: {known[cid].name}"
        phone_only = adapter.PHONE_ONLY or (adapter.NAME == "whatsapp" and spec.whatsapp_qr)
        code = codes.get(cid)
        qr_image = None
        if phone_only:
            qr_image = f"{origin}/{code}.svg" if code else f"{origin}/admin/widgets/sample-qr.svg"
        buttons.append(
            {
                "messenger": adapter.NAME,
                "label": label,
                "href": f"{origin}/admin/widgets/preview#{adapter.NAME}",
                "qr": qr_image,
            }
        )
    stored = spec.stored()
    texts = {lang: dict(own) for lang, own in stored["texts"].items()}
    if spec.consent:
        for lang, wording in spec.consent.text.items():
            texts.setdefault(lang, {})["consent"] = wording
    return {
        "id": PREVIEW_ID,
        "layout": spec.layout,
        "position": spec.position,
        "lang": spec.lang,
        "color": spec.color,
        "text_color": spec.text_color,
        "delay": 0,
        "scroll": 0,
        "include": [],
        "exclude": [],
        "texts": texts,
        "consent_version": spec.consent.version if spec.consent else None,
        "buttons": buttons,
        "beacon": "",  # not an http(s) URL: the script sends no beacon
    }


@pages.page
async def preview_script(request: Request, user: User) -> Response:
    origin = f"{request.url.scheme}://{request.url.netloc}"
    base = request.app.state.services.settings.base_url
    params = ImmutableMultiDict(request.query_params.multi_items())
    headers = {**security.HEADERS, "content-type": "text/javascript; charset=utf-8"}
    try:
        config = await pages.reading(request, lambda s: preview_config(s, params, origin, base))
    except AcquisitionError as error:
        # Tell the page what is wrong instead of showing nothing.
        problems = [{"field": e.field, "message": e.message} for e in error.errors] or [
            {"field": "", "message": error.message}
        ]
        body = (
            "document.dispatchEvent(new CustomEvent('acquisition:preview-error',{detail:"
            + served.script_json(problems)
            + "}));"
        )
        return Response(body, headers=headers)
    t = served.template()
    body = t.head + served.script_json(config) + t.tail
    body += "document.dispatchEvent(new CustomEvent('acquisition:preview-ready'));"
    return Response(body, headers=headers)


@pages.page
async def sample_qr(request: Request, user: User) -> Response:
    """What a desktop visitor scans, for a widget not saved yet (it has no links yet)."""
    base = request.app.state.services.settings.base_url
    body = qr.render_cached(links.qr_url(base, "SAMPLE"), "svg", qr.QrOptions(ec="L"))
    return Response(body, media_type="image/svg+xml", headers=security.HEADERS)


@pages.page
async def preview_target(request: Request, user: User) -> Response:
    return pages.render(
        request, "admin/error.html", message="This is where a visitor would be sent."
    )
