"""PDF: a hand-written single page whose MediaBox is the physical size; modules are rectangles in
one path, the caption Helvetica text or a 1-bit stencil, the logo an RGB image XObject."""

from __future__ import annotations

import zlib

from acquisition.qr.layout import _helvetica_width_em, _layout, _num
from acquisition.qr.logo import LOGO_EMBED_SIDE, _logo_flat
from acquisition.qr.options import QrOptions, _rgb
from acquisition.qr.png import _caption_mask


def _pdf_colour(colour: str, stroke: bool = False) -> str:
    if colour == "#000000":  # pure K black: no four-colour registration fringes on fine modules
        return "0 0 0 1 K" if stroke else "0 0 0 1 k"
    r, g, b = _rgb(colour)
    op = "RG" if stroke else "rg"
    return f"{_num(r / 255)} {_num(g / 255)} {_num(b / 255)} {op}"


def _pdf_string(text: str) -> bytes | None:
    """A PDF literal string in WinAnsiEncoding, or None when the text is outside it."""
    try:
        raw = text.encode("cp1252")
    except UnicodeEncodeError:
        return None
    out = bytearray(b"(")
    for byte in raw:
        if byte in b"()\\":
            out += b"\\" + bytes([byte])
        elif 32 <= byte < 127:
            out.append(byte)
        else:
            out += b"\\%03o" % byte
    out += b")"
    return bytes(out)


class _Pdf:
    """Just enough of a PDF writer: numbered objects, streams, xref table, trailer."""

    def __init__(self) -> None:
        self.objects: list[bytes] = []

    def reserve(self) -> int:
        self.objects.append(b"")
        return len(self.objects)

    def set(self, num: int, body: bytes) -> int:
        self.objects[num - 1] = body
        return num

    def add(self, body: bytes) -> int:
        return self.set(self.reserve(), body)

    def stream(self, entries: bytes, data: bytes) -> int:
        return self.add(
            b"<< " + entries + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"
        )

    def finish(self, root: int) -> bytes:
        out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for i, body in enumerate(self.objects, start=1):
            offsets.append(len(out))
            out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(self.objects) + 1)
        for off in offsets:
            out += b"%010d 00000 n \n" % off
        out += b"trailer\n<< /Size %d /Root %d 0 R >>\n" % (len(self.objects) + 1, root)
        out += b"startxref\n%d\n%%%%EOF\n" % xref
        return bytes(out)


def render_pdf(data: str, options: QrOptions) -> bytes:
    lay = _layout(data, options)
    n = lay.modules
    pt = 72 / 25.4  # points per mm
    width, height = lay.size_mm * pt, lay.height_mm * pt
    unit = width / n  # points per module
    pdf = _Pdf()
    catalog, pages, page = pdf.reserve(), pdf.reserve(), pdf.reserve()
    resources: list[bytes] = []
    ops = [
        f"{_pdf_colour(options.bg)} 0 0 {_num(width)} {_num(height)} re f",
        # Module coordinates: origin at the top left, y down, one unit per module.
        f"q {_num(unit)} 0 0 {_num(-unit)} 0 {_num(height)} cm {_pdf_colour(options.fg)}",
    ]
    q = lay.quiet
    ops.extend(f"{x + q} {y + q} {w} 1 re" for y, x, w in lay.symbol.runs)
    ops.append("f Q")
    box = lay.logo_box()
    if box is not None and options.logo is not None:
        logo = _logo_flat(options.logo, options.bg, LOGO_EMBED_SIDE)
        img = pdf.stream(
            b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
            b"/BitsPerComponent 8 /Interpolate true /Filter /FlateDecode"
            % (logo.width, logo.height),
            zlib.compress(logo.tobytes(), 6),
        )
        resources.append(b"/Logo %d 0 R" % img)
        off, side = box
        k = side / max(logo.size)
        w, h = logo.width * k, logo.height * k
        x, y = off + (side - w) / 2, off + (side - h) / 2
        ops.append(
            f"q {_num(w * unit)} 0 0 {_num(h * unit)} {_num(x * unit)} "
            f"{_num(height - (y + h) * unit)} cm /Logo Do Q"
        )
    font_res = b""
    if lay.caption:
        baseline = height - lay.baseline_mm * pt
        font_pt = lay.font_mm * pt
        literal = _pdf_string(lay.caption)
        if literal is not None:
            font = pdf.add(
                b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            )
            font_res = b"/Font << /F1 %d 0 R >>" % font
            text_w = _helvetica_width_em(lay.caption) * font_pt
            ops.append(
                f"BT {_pdf_colour(options.fg)} /F1 {_num(font_pt)} Tf "
                f"{_num((width - text_w) / 2)} {_num(baseline)} Td "
                + literal.decode("ascii")
                + " Tj ET"
            )
        else:
            # Outside WinAnsi (Cyrillic, Greek, CJK...): a 1-bit stencil of the text painted in fg,
            # drawn at 600 dpi but at most 8000 px wide.
            band_h = lay.band_mm * pt
            dpi = min(600.0, 8000 / (lay.size_mm / 25.4))
            px_per_mm = dpi / 25.4
            w_px = max(round(lay.size_mm * px_per_mm), 1)
            h_px = max(round(lay.band_mm * px_per_mm), 1)
            mask = _caption_mask(
                lay.caption,
                w_px,
                h_px,
                (lay.baseline_mm - lay.size_mm) * px_per_mm,
                lay.font_mm * px_per_mm,
            ).point(lambda v: 255 if v >= 128 else 0, mode="1")
            stencil = pdf.stream(
                b"/Type /XObject /Subtype /Image /Width %d /Height %d /ImageMask true "
                b"/BitsPerComponent 1 /Filter /FlateDecode" % (w_px, h_px),
                zlib.compress(mask.tobytes(), 6),
            )
            resources.append(b"/Caption %d 0 R" % stencil)
            ops.append(
                f"q {_pdf_colour(options.fg)} {_num(width)} 0 0 {_num(band_h)} 0 0 cm /Caption Do Q"
            )
    content = pdf.stream(b"/Filter /FlateDecode", zlib.compress("\n".join(ops).encode(), 6))
    xobjects = b"/XObject << " + b" ".join(resources) + b" >>" if resources else b""
    box_pt = b"[0 0 %s %s]" % (_num(width).encode(), _num(height).encode())
    pdf.set(catalog, b"<< /Type /Catalog /Pages %d 0 R >>" % pages)
    pdf.set(pages, b"<< /Type /Pages /Kids [%d 0 R] /Count 1 >>" % page)
    pdf.set(
        page,
        b"<< /Type /Page /Parent %d 0 R /MediaBox %s /TrimBox %s "
        b"/Resources << %s %s >> /Contents %d 0 R >>"
        % (pages, box_pt, box_pt, font_res, xobjects, content),
    )
    return pdf.finish(catalog)
