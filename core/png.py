"""Paint a core.charts.Chart into a PNG, with the standard library only (zlib, struct).

Why not Pillow or CairoSVG: the charts are axis-aligned rectangles, gridlines and numbers,
which a byte buffer draws in a few milliseconds; Pillow is a native wheel of ~4 MB and
CairoSVG needs the Cairo C library in every image that runs the bot. Text is a built-in
5x7 bitmap font holding what the digest's chart writes: digits and `.:-/%+` (day labels
like 24.11, counts). Words (title, legend) go into the photo's caption, where Telegram
renders them in the reader's font; characters outside the font are left out.

The picture is drawn at `scale` times the chart's size (2 by default) for sharp text on
phones; a 720x260 chart becomes a 1440x520 PNG of ~10-20 KB.
"""

from __future__ import annotations

import struct
import zlib

from core.charts import Chart

# 5 columns x 7 rows per glyph, each row a 5-bit mask (bit 4 = leftmost column).
FONT: dict[str, tuple[int, ...]] = {
    "0": (0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E),
    "1": (0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "2": (0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F),
    "3": (0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E),
    "4": (0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02),
    "5": (0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E),
    "6": (0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E),
    "7": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08),
    "8": (0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E),
    "9": (0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C),
    ".": (0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C),
    ":": (0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00),
    "-": (0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00),
    "+": (0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00),
    "/": (0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10),
    "%": (0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03),
    " ": (0x00,) * 7,
}
GLYPH_W, GLYPH_H, GAP = 5, 7, 1


def _rgb(color: str) -> bytes:
    value = color.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    return bytes.fromhex(value[:6])


class Canvas:
    """An RGB pixel buffer with the few drawing operations the charts need."""

    def __init__(self, width: int, height: int, background: str = "#ffffff") -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(_rgb(background) * (width * height))

    def rect(self, x: float, y: float, w: float, h: float, color: str) -> None:
        x0, y0 = max(0, round(x)), max(0, round(y))
        x1, y1 = min(self.width, round(x + w)), min(self.height, round(y + h))
        if x1 <= x0 or y1 <= y0:
            return
        run = _rgb(color) * (x1 - x0)
        for row in range(y0, y1):
            start = (row * self.width + x0) * 3
            self.pixels[start : start + len(run)] = run

    def line(self, x1: float, y1: float, x2: float, y2: float, color: str, thickness: int = 1) -> None:
        if round(y1) == round(y2):
            self.rect(min(x1, x2), round(y1), abs(x2 - x1) + 1, thickness, color)
        elif round(x1) == round(x2):
            self.rect(round(x1), min(y1, y2), thickness, abs(y2 - y1) + 1, color)
        else:  # Bresenham, for completeness (the charts draw only axis-aligned lines)
            ax, ay, bx, by = round(x1), round(y1), round(x2), round(y2)
            dx, dy = abs(bx - ax), -abs(by - ay)
            sx, sy = (1 if ax < bx else -1), (1 if ay < by else -1)
            err = dx + dy
            while True:
                self.rect(ax, ay, thickness, thickness, color)
                if ax == bx and ay == by:
                    break
                e2 = 2 * err
                if e2 >= dy:
                    err += dy
                    ax += sx
                if e2 <= dx:
                    err += dx
                    ay += sy

    def text(self, x: float, baseline: float, text: str, color: str, scale: int, anchor: str) -> None:
        glyphs = [FONT[c] for c in text if c in FONT]
        advance = (GLYPH_W + GAP) * scale
        width = len(glyphs) * advance - GAP * scale
        if anchor == "middle":
            x -= width / 2
        elif anchor == "end":
            x -= width
        top = round(baseline) - GLYPH_H * scale
        for n, rows in enumerate(glyphs):
            left = round(x) + n * advance
            for r, bits in enumerate(rows):
                for c in range(GLYPH_W):
                    if bits & (1 << (GLYPH_W - 1 - c)):
                        self.rect(left + c * scale, top + r * scale, scale, scale, color)

    def png(self) -> bytes:
        raw = bytearray()
        stride = self.width * 3
        for row in range(self.height):
            raw.append(0)  # filter: none
            raw += self.pixels[row * stride : (row + 1) * stride]
        return encode_png(self.width, self.height, bytes(raw))


def encode_png(width: int, height: int, scanlines: bytes) -> bytes:
    """A PNG file from 8-bit RGB scanlines, each already prefixed with its filter byte."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(scanlines, 9))
        + chunk(b"IEND", b"")
    )


def render(chart: Chart, scale: int = 2) -> bytes:
    """The chart as PNG bytes, `scale` times its layout size."""
    canvas = Canvas(chart.width * scale, chart.height * scale)
    for ln in chart.lines:
        canvas.line(ln.x1 * scale, ln.y1 * scale, ln.x2 * scale, ln.y2 * scale, ln.color, scale)
    for r in chart.rects:
        canvas.rect(r.x * scale, r.y * scale, r.w * scale, r.h * scale, r.color)
    for t in chart.texts:
        glyph_scale = max(1, round(t.size * scale / 9))
        canvas.text(t.x * scale, t.y * scale, t.text, t.color, glyph_scale, t.anchor)
    return canvas.png()
