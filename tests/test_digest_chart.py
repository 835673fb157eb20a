"""The digest's picture: the console's requests-per-day chart for 7 days, drawn as a PNG by
the standard library (core.png), queued with the digest and sent as a photo through the
outbox to the (fake) Telegram Bot API."""

from __future__ import annotations

import struct
import zlib
from datetime import UTC, datetime, timedelta

from core import requests as svc
from core.charts import STATUS_COLORS, per_day_chart, to_svg
from core.png import render
from core.reports import DayCounts
from db.models import CustomerRequest
from scheduler.clock import FixedClock
from scheduler.runtime import SchedulerRuntime


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, RGB rows) of an 8-bit RGB PNG with filter 0 rows (what core.png
    writes), checking the signature and every chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, height = 8, b"", 0
    width = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert (depth, color) == (8, 2)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * 3 + 1
    rows = [raw[i * stride + 1 : (i + 1) * stride] for i in range(height)]
    assert all(raw[i * stride] == 0 for i in range(height))
    return width, height, rows


def colour_count(rows: list[bytes], hex_colour: str) -> int:
    target = bytes.fromhex(hex_colour.lstrip("#"))
    return sum(row[i : i + 3] == target for row in rows for i in range(0, len(row), 3))


def week(counts: list[dict[str, int]]) -> list[DayCounts]:
    start = datetime(2026, 11, 18).date()
    return [DayCounts(start + timedelta(days=i), {s: c.get(s, 0) for s in STATUS_COLORS})
            for i, c in enumerate(counts)]


def test_png_shows_the_bars_in_the_status_colours_and_nothing_else():
    days = week([{}, {"open": 3}, {}, {"completed": 2, "in_progress": 1}, {}, {}, {"open": 1}])
    data = render(per_day_chart(days, "ru"))
    width, height, rows = decode_png(data)
    assert (width, height) == (1440, 520)  # 2x the 720x260 layout
    # Bars of open (4 requests), in progress (1), completed (2); no closed one.
    open_px, progress_px = colour_count(rows, STATUS_COLORS["open"]), colour_count(rows, STATUS_COLORS["in_progress"])
    done_px = colour_count(rows, STATUS_COLORS["completed"])
    assert open_px > 0 and progress_px > 0 and done_px > 0
    assert colour_count(rows, STATUS_COLORS["closed"]) == 0
    # Heights follow the counts: 4 open bars' worth against 2 completed against 1 in progress.
    assert abs(open_px / done_px - 2) < 0.1 and abs(done_px / progress_px - 2) < 0.1
    assert len(data) < 40_000


def test_svg_and_png_come_from_one_layout():
    days = week([{"open": 1}, {"closed": 2}, {}, {}, {}, {}, {"in_progress": 5}])
    chart = per_day_chart(days, "en")
    svg = to_svg(chart, title="Requests <per> day")
    assert svg.count("<rect") == len(chart.rects) == 3
    assert "Requests &lt;per&gt; day" in svg and "24.11" in svg
    assert "<script" not in svg


async def test_digest_posts_the_7_day_chart_as_a_photo_through_the_outbox(
    telegram_settings, fake_telegram, make_user
):
    from bot.runtime import start_bot

    customer = await make_user("customer")
    admin = await make_user("admin")
    now = datetime.now(UTC).replace(microsecond=0)
    for days_ago, take in ((0, False), (0, True), (2, False), (9, False)):
        req = await svc.create_request(customer, title="t", description="d")
        if take:
            await svc.take_request(admin, req.id)
        await CustomerRequest.filter(id=req.id).update(created_at=now - timedelta(days=days_ago))
    slot = now.replace(second=0)
    scheduler = SchedulerRuntime(telegram_settings, clock=FixedClock(now))
    bot = await start_bot(telegram_settings, updates=False)
    try:
        assert await scheduler.fire("digest", slot)
        assert not await scheduler.fire("digest", slot)  # once per slot
        calls = await fake_telegram.wait_for(
            "sendPhoto", where=lambda c: int(c.params["chat_id"]) == fake_telegram.admin_chat_id)
        call = calls[-1]
        caption = call.params["caption"]
        # The 9-day-old request is outside the week; the legend counts by status now.
        assert "Запросы по дням за 7 дней" in caption
        assert "🟦 Открыт 2" in caption and "🟧 В работе 1" in caption and "🟪 Закрыт 0" in caption
        picture = next(iter(call.files.values()))
        width, height, rows = decode_png(picture)
        assert (width, height) == (1440, 520)
        assert colour_count(rows, STATUS_COLORS["open"]) > 0
        assert colour_count(rows, STATUS_COLORS["in_progress"]) > 0
        assert colour_count(rows, STATUS_COLORS["completed"]) == 0
        # After the digest's text, and only one photo however often the slot runs.
        texts = [c for c in fake_telegram.calls_of("sendMessage") if "Сводка" in str(c.params.get("text"))]
        assert texts and texts[0].at <= call.at
        assert len(fake_telegram.calls_of("sendPhoto")) == 1
    finally:
        await bot.stop()
