"""The event loop stays free: while the largest payloads the limits allow go through every
channel at once (REST, web form, streamed upload, refused oversized JSON, the Telegram relay
and sender splitting 10,000-character messages), `/health` keeps answering within 500 ms.

Everything runs in this test's event loop (API server, bot relay and sender, fake Bot API),
so any handler that blocks the loop shows up as a slow `/health`.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from bot.runtime import start_bot
from db.models import RequestMessage, TelegramOutbox
from telegram_delivery.outbox import tg_len
from tests.api_helpers import ADMIN, CUSTOMER, post_raw
from tests.fake_telegram import FakeTelegram

BUDGET = 0.5
CUSTOMER_TG = 555_001


async def _probe(base: str, stop: asyncio.Event, latencies: list[float]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        while not stop.is_set():
            started = time.perf_counter()
            r = await client.get("/health")
            latencies.append(time.perf_counter() - started)
            assert r.status_code == 200
            await asyncio.sleep(0.05)


async def test_health_answers_within_500ms_while_the_largest_payloads_go_through(
    telegram_settings, fake_telegram: FakeTelegram, api, make_user, token_for
):
    admin = await make_user("admin")
    customer = await make_user("customer", telegram_id=CUSTOMER_TG)
    ta, tc = await token_for(admin), await token_for(customer)
    limits = telegram_settings.limits
    rt = await start_bot(telegram_settings)
    stop = asyncio.Event()
    latencies: list[float] = []
    probe = asyncio.create_task(_probe(api.base, stop, latencies))
    try:
        await asyncio.sleep(0.2)
        started = time.perf_counter()

        async def rest_requests() -> list[int]:
            ids = []
            for i in range(3):
                body = {
                    "title": "😀" * limits.title,
                    "description": ("<&>😀 " * limits.content)[: limits.content],
                    "tags": [f"{i}-" + "т" * (limits.tag_length - 3) for _ in range(limits.tags)],
                }
                r = await api.post(CUSTOMER, tc, json=body)
                assert r.status_code == 201, r.text
                ids.append(r.json()["id"])
            return ids

        ids = await rest_requests()
        rid = ids[0]
        await api.post(f"{ADMIN}{rid}/take/", ta)

        async def thread_messages() -> None:
            for text in ("<" * limits.content, "👨\u200d👩\u200d👧" * (limits.content // 8),
                         "слово " * (limits.content // 6)):
                r = await api.post(f"{CUSTOMER}{rid}/messages/", tc, json={"content": text})
                assert r.status_code == 201, r.text
                r = await api.post(f"{ADMIN}{rid}/messages/", ta, json={"content": text})
                assert r.status_code == 201, r.text

        async def oversized_json() -> None:
            raw = b'{"title": "t", "description": "' + b"<" * 1_200_000 + b'"}'
            headers = {"Authorization": f"Token {ta}", "Content-Type": "application/json"}
            for _ in range(3):
                assert (await post_raw(api.base, ADMIN, headers, [raw]))[0] == 413

        async def streamed_upload() -> None:
            data = b"\0" * (telegram_settings.max_upload_bytes - 4096)
            r = await api.post(f"{ADMIN}{rid}/attachments/", ta,
                               files={"file": ("big.bin", data, "application/octet-stream")})
            assert r.status_code == 201, r.text

        async def web_form() -> None:
            data = {"name": "Анна", "email": "anna@example.com", "title": "x" * limits.title,
                    "description": "<" * limits.content, "category": "general"}
            payload = b"\0" * (telegram_settings.max_upload_bytes - 64 * 1024)
            r = await api.http.post("/api/public/requests/", data=data,
                                    files=[("attachments", ("big.bin", payload, "application/octet-stream"))],
                                    headers={"Accept": "application/json"})
            assert r.status_code in (200, 201), r.text

        await asyncio.gather(thread_messages(), oversized_json(), streamed_upload(), web_form())
        # The relay and the sender turn the 10,000-character messages into Telegram calls.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            to_customer = [c for c in fake_telegram.calls_of("sendMessage") if c.chat_id == CUSTOMER_TG]
            if to_customer and await TelegramOutbox.filter(request_id=rid).count() >= 6:
                break
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        await probe
        await rt.stop()

    assert await RequestMessage.filter(request_id=rid).count() >= 6
    sent = [c for c in fake_telegram.calls_of("sendMessage")]
    assert sent, "nothing reached Telegram"
    assert all(tg_len(c.params["text"]) <= 4096 for c in sent)
    # The customer got the admin's long replies.
    assert any(c.chat_id == CUSTOMER_TG for c in sent)
    worst = max(latencies)
    print(f"\n/health during {elapsed:.1f}s of load: {len(latencies)} probes, "
          f"p50 {sorted(latencies)[len(latencies) // 2] * 1000:.0f} ms, max {worst * 1000:.0f} ms")
    assert len(latencies) >= 5
    assert worst < BUDGET, f"/health took {worst * 1000:.0f} ms while payloads went through"
