"""Fixtures for Telegram tests: the fake Bot API server and settings pointing at it.

Loaded from tests/conftest.py through `pytest_plugins`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core import runtime
from core.settings import Settings
from tests.fake_telegram import FakeTelegram


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    """A fake Telegram Bot API server on 127.0.0.1 (see tests/fake_telegram.py)."""
    fake = FakeTelegram()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def telegram_settings(settings: Settings, fake_telegram: FakeTelegram) -> Settings:
    """`settings` (migrated DB on both backends) plus a bot token, admin group and API server
    pointing at the fake; also installed as the process's runtime settings."""
    s = settings.with_overrides(
        telegram_bot_token=fake_telegram.token,
        telegram_admin_chat_id=fake_telegram.admin_chat_id,
        telegram_api_server=fake_telegram.base_url,
        telegram_mode="polling",
    )
    runtime.configure(s)
    return s
