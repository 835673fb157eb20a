"""The production topology without Docker: two API processes, the bot and the scheduler as
separate processes, all on PostgreSQL and Redis on loopback, the bot talking to the fake
Telegram Bot API. One request goes through its whole life across them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import websockets

from tests.conftest import (
    REDIS_TEST_URL,
    _pg_admin,
    free_port,
    need_service,
    pg_url,
    postgres_available,
    redis_available,
)
from tests.fake_telegram import FakeTelegram

ROOT = Path(__file__).resolve().parents[1]
CUSTOMER_TG, ADMIN_TG, DIRECTOR_TG = 7001, 9002, 9001


class Topology:
    def __init__(self, tmp: Path, fake: FakeTelegram, db: str) -> None:
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = {
            **os.environ,
            "DATABASE_URL": pg_url(db),
            "REDIS_URL": REDIS_TEST_URL,
            "EVENTS_CHANNEL": f"helpdesk:e2e:{uuid.uuid4().hex[:8]}",
            "TELEGRAM_BOT_TOKEN": fake.token,
            "TELEGRAM_ADMIN_CHAT_ID": str(fake.admin_chat_id),
            "TELEGRAM_API_SERVER": fake.base_url,
            "TELEGRAM_MODE": "polling",
            "MEDIA_ROOT": str(tmp / "media"),
            "HELPDESK_ENV_FILE": "/nonexistent",
            "MIGRATE_ON_START": "0",
            "LOG_FORMAT": "json",
        }

    def cli(self, *args: str) -> str:
        r = subprocess.run(
            [sys.executable, "-m", "bootstrap.cli", *args], cwd=ROOT, env=self.env,
            capture_output=True, text=True, timeout=120,
        )
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def start(self, name: str, *args: str, **env: str) -> None:
        log = open(self.tmp / f"{name}.log", "wb")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "bootstrap.cli", *args], cwd=ROOT, env={**self.env, **env},
            stdout=log, stderr=subprocess.STDOUT,
        )

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def stop(self) -> dict[str, int | None]:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = {}
        for name, p in self.procs.items():
            try:
                codes[name] = p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                codes[name] = None
        return codes


async def _wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
    raise AssertionError(f"{url} did not come up")


async def _next_frame(ws, type_: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        if frame.get("type") == type_:
            return frame


@pytest.mark.heavy(seconds=25)
async def test_one_request_through_its_whole_life_across_processes(tmp_path):
    need_service("PostgreSQL", postgres_available())
    need_service("Redis", redis_available())
    db = f"helpdesk_e2e_{uuid.uuid4().hex[:8]}"
    await _pg_admin(f'CREATE DATABASE "{db}"')
    fake = FakeTelegram()
    await fake.start()
    top = Topology(tmp_path, fake, db)
    try:
        top.cli("migrate")
        top.cli("createuser", "--username", "olga", "--password", "pw-olga-1", "--role", "director",
                "--first-name", "Olga", "--telegram-id", str(DIRECTOR_TG))
        top.cli("createuser", "--username", "ivan", "--password", "pw-ivan-1", "--role", "admin",
                "--first-name", "Ivan", "--last-name", "Petrov", "--telegram-id", str(ADMIN_TG))
        top.cli("createuser", "--username", "katya", "--role", "customer", "--first-name", "Katya",
                "--telegram-id", str(CUSTOMER_TG))
        admin_token = top.cli("token", "ivan")
        pa, pb = free_port(), free_port()
        top.start("api-a", "api", PORT=str(pa))
        top.start("api-b", "api", PORT=str(pb))
        top.start("bot", "bot")
        top.start("scheduler", "scheduler")
        a, b = f"http://127.0.0.1:{pa}", f"http://127.0.0.1:{pb}"
        await _wait_http(f"{a}/ready")
        await _wait_http(f"{b}/ready")
        headers = {"Authorization": f"Token {admin_token}"}

        async with httpx.AsyncClient(headers=headers, timeout=30) as http, websockets.connect(
            f"ws://127.0.0.1:{pb}/ws/admin/notifications/?token={admin_token}"
        ) as ws:
            # 1. Created through API A ...
            r = await http.post(f"{a}/api/admin/customer-requests/", json={
                "title": "Не приходит SMS", "description": "Код не приходит", "priority": "high",
                "customer_id": 3,
            })
            assert r.status_code == 201, r.text
            assert r.json()["customer"]["username"] == "katya"
            rid = r.json()["id"]
            # ... announced on API B's WebSocket ...
            frame = await _next_frame(ws, "new_request")
            assert frame["data"]["id"] == rid
            # ... and posted as a card in the admin group by the bot process.
            card = await fake.wait_for(
                "sendMessage", timeout=30,
                where=lambda c: c.chat_id == fake.admin_chat_id and f"req:take:{rid}" in json.dumps(c.params),
            )
            card_id = card[0].result["message_id"]

            # 2. An admin presses Take in Telegram.
            fake.callback_update(fake.user(ADMIN_TG, "Ivan"), fake.admin_chat_id, card_id, f"req:take:{rid}")
            await fake.wait_for("answerCallbackQuery", timeout=30)
            frame = await _next_frame(ws, "request_updated")
            assert frame["data"]["status"] == "in_progress"
            detail = (await http.get(f"{b}/api/admin/customer-requests/{rid}/")).json()
            assert detail["assigned_admin"]["username"] == "ivan"
            await fake.wait_for("editMessageText", timeout=30,
                                where=lambda c: c.params.get("message_id") == card_id)
            await fake.wait_for("sendMessage", timeout=30, where=lambda c: c.chat_id == CUSTOMER_TG)

            # 3. The admin answers in the request's thread; the customer gets it in private.
            fake.message_update(fake.admin_chat_id, fake.user(ADMIN_TG, "Ivan"),
                                "Здравствуйте! Проверяем оператора.", reply_to_message_id=card_id)
            relayed = await fake.wait_for(
                "sendMessage", timeout=30,
                where=lambda c: c.chat_id == CUSTOMER_TG and "Проверяем оператора" in str(c.params.get("text")),
            )
            # An internal note stays inside the team.
            fake.message_update(fake.admin_chat_id, fake.user(ADMIN_TG, "Ivan"),
                                "/note клиент VIP", reply_to_message_id=card_id)

            # 4. The customer replies to the relayed message in the private chat.
            fake.message_update(CUSTOMER_TG, fake.user(CUSTOMER_TG, "Katya"), "Спасибо, жду",
                                reply_to_message_id=relayed[0].result["message_id"])
            await fake.wait_for(
                "sendMessage", timeout=30,
                where=lambda c: c.chat_id == fake.admin_chat_id and "Спасибо, жду" in str(c.params.get("text")),
            )
            messages = (await http.get(f"{a}/api/admin/customer-requests/{rid}/messages/")).json()
            contents = [(m["sender_type"], m["content"], m["is_internal"]) for m in messages]
            assert ("admin", "Здравствуйте! Проверяем оператора.", False) in contents
            assert ("customer", "Спасибо, жду", False) in contents
            assert any(c[2] and "клиент VIP" in c[1] for c in contents)

            # 5. Complete from Telegram; the customer is told; REST on B agrees.
            fake.callback_update(fake.user(ADMIN_TG, "Ivan"), fake.admin_chat_id, card_id, f"req:done:{rid}")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                status = (await http.get(f"{b}/api/admin/customer-requests/{rid}/")).json()["status"]
                if status == "completed":
                    break
                await asyncio.sleep(0.3)
            assert status == "completed"
            await asyncio.sleep(2)  # let the relay drain

        customer_texts = [str(c.params.get("text", "")) for c in fake.calls_of("sendMessage")
                          if c.chat_id == CUSTOMER_TG]
        assert not any("клиент VIP" in t for t in customer_texts), "internal note leaked"
        assert len(customer_texts) == len(set(customer_texts)), f"duplicate delivery: {customer_texts}"
        cards = [c for c in fake.calls_of("sendMessage")
                 if c.chat_id == fake.admin_chat_id and f"req:take:{rid}" in json.dumps(c.params)]
        assert len(cards) == 1, "the card was posted more than once"

        # The scheduler process runs its jobs against the same database.
        jobs = (await httpx.AsyncClient(headers=headers).get(f"{a}/api/admin/scheduler/jobs/")).json()
        assert {"digest", "reminders", "auto_close"} <= {j["name"] for j in jobs["jobs"]}
        assert top.procs["scheduler"].poll() is None, top.log("scheduler")
    finally:
        codes = top.stop()
        await fake.stop()
        await _pg_admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    assert all(code == 0 for code in codes.values()), {
        name: (code, top.log(name)[-2000:]) for name, code in codes.items() if code != 0
    }
