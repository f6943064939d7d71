"""SVG: one `<path>` of merged horizontal runs in a viewBox measured in modules, width/height in
mm; the logo as an embedded PNG, the caption as text."""

from __future__ import annotations

from acquisition.qr.layout import _layout, _num
from acquisition.qr.logo import _logo_png_b64
from acquisition.qr.options import QrOptions
from acquisition.qr.symbol import Symbol

_SVG_FONT = "Helvetica, Arial, 'Liberation Sans', sans-serif"


def _svg_path(symbol: Symbol, quiet: int) -> str:
    """One path of merged horizontal runs, each `h w v1 h-w z`, moving relative between runs."""
    if not symbol.runs:
        return ""
    y0, x0, w0 = symbol.runs[0]
    parts = [f"M{x0 + quiet} {y0 + quiet}h{w0}v1h-{w0}z"]
    px, py = x0, y0  # after `z` the current point is back at the run's start
    for y, x, w in symbol.runs[1:]:
        parts.append(f"m{x - px} {y - py}h{w}v1h-{w}z")
        px, py = x, y
    return "".join(parts)


def _xml_escape(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
    )


def render_svg(data: str, options: QrOptions) -> bytes:
    lay = _layout(data, options)
    n = lay.modules
    unit = lay.size_mm / n  # mm per module
    height = n + lay.band_mm / unit
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'version="1.1" width="{_num(lay.size_mm)}mm" height="{_num(lay.height_mm)}mm" '
        f'viewBox="0 0 {n} {_num(height)}">',
        f'<rect width="{n}" height="{_num(height)}" fill="{options.bg}"/>',
        f'<path fill="{options.fg}" d="{_svg_path(lay.symbol, lay.quiet)}"/>',
    ]
    box = lay.logo_box()
    if box is not None and options.logo is not None:
        off, side = box
        out.append(
            f'<image x="{_num(off)}" y="{_num(off)}" width="{_num(side)}" height="{_num(side)}" '
            'preserveAspectRatio="xMidYMid meet" '
            f'xlink:href="data:image/png;base64,{_logo_png_b64(options.logo)}"/>'
        )
    if lay.caption:
        out.append(
            f'<text x="{_num(n / 2)}" y="{_num(lay.baseline_mm / unit)}" '
            f'font-family="{_SVG_FONT}" font-size="{_num(lay.font_mm / unit)}" '
            f'text-anchor="middle" fill="{options.fg}">{_xml_escape(lay.caption)}</text>'
        )
    out.append("</svg>\n")
    return "".join(out).encode("utf-8")
