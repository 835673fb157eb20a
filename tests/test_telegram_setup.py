"""A setup a new user can follow: `helpdesk telegram-check` says what is wrong, `helpdesk
link-telegram` links (and moves) a Telegram id, an unlinked staff member is told their id,
webhook mode without a secret does not start."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from bootstrap.commands import link_telegram_command
from bot.runtime import start_bot
from bot.setup_check import check_telegram, render
from core import requests as svc
from core.settings import SettingsError, load_settings
from db.models import AuditEntry, CustomerRequest, User
from tests.bot_handlers_support import answer_for, card_for, reply_containing, running_bot
from tests.fake_telegram import BOT_USER_ID, FakeTelegram

ROOT = Path(__file__).resolve().parent.parent


async def run_cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """`python -m bootstrap.cli ARGS` in its own process (the fake Bot API keeps serving here)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bootstrap.cli", *args, cwd=ROOT,
        env={**os.environ, "HELPDESK_ENV_FILE": "/nonexistent", "PYTHONPATH": str(ROOT), **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


def cli_env(settings, fake: FakeTelegram, **more: str) -> dict[str, str]:
    return {"DATABASE_URL": settings.database_url, "TELEGRAM_BOT_TOKEN": fake.token,
            "TELEGRAM_API_SERVER": fake.base_url, "TELEGRAM_ADMIN_CHAT_ID": str(fake.admin_chat_id),
            **more}


# --- telegram-check ----------------------------------------------------------------------------


async def test_telegram_check_passes_a_forum_group_with_an_admin_bot(telegram_settings, fake_telegram):
    fake_telegram.forum = True
    code, out, err = await run_cli(cli_env(telegram_settings, fake_telegram), "telegram-check")
    assert code == 0, out + err
    assert "token valid: the bot is @helpdesk_test_bot" in out
    assert "topics on" in out and "may manage topics" in out
    assert "the bot is ready" in out


async def test_telegram_check_fails_with_the_reason(telegram_settings, fake_telegram):
    fake = fake_telegram
    fake.check_token = True
    code, out, _ = await run_cli(cli_env(telegram_settings, fake, TELEGRAM_BOT_TOKEN="42:wrong"),
                                 "telegram-check")
    assert code == 1 and "token is not valid" in out and "@BotFather" in out


@pytest.mark.parametrize("case", ["migrated", "missing", "not_admin", "no_topics_right", "privacy_not_admin",
                                  "webhook_port", "webhook_error", "no_chat_id"])
async def test_telegram_check_names_each_problem(telegram_settings, fake_telegram, case):
    fake = fake_telegram
    chat = fake.admin_chat_id
    settings = telegram_settings
    fake.forum = True
    expected = {
        "migrated": "TELEGRAM_ADMIN_CHAT_ID=-1009876543210",
        "missing": "not reachable",
        "not_admin": "not an administrator",
        "no_topics_right": "may not manage topics",
        "privacy_not_admin": "privacy mode is on",
        "webhook_port": "ports 443, 80, 88 or 8443",
        "webhook_error": "Connection refused",
        "no_chat_id": "TELEGRAM_ADMIN_CHAT_ID is not set",
    }[case]
    if case == "migrated":
        fake.migrate_chat(chat, -1009876543210)
    elif case == "missing":
        fake.missing_chats.add(chat)
    elif case == "not_admin":
        fake.set_member(chat, BOT_USER_ID, status="member")
    elif case == "no_topics_right":
        fake.set_member(chat, BOT_USER_ID, can_manage_topics=False)
    elif case == "privacy_not_admin":
        fake.privacy_mode = True
        fake.set_member(chat, BOT_USER_ID, status="member")
    elif case == "webhook_port":
        settings = settings.with_overrides(telegram_mode="webhook", telegram_webhook_secret="s",
                                           telegram_webhook_url="https://desk.example.com:8000/telegram/webhook/")
        fake.webhook_url = settings.telegram_webhook_url
    elif case == "webhook_error":
        url = "https://desk.example.com/telegram/webhook/"
        settings = settings.with_overrides(telegram_mode="webhook", telegram_webhook_secret="s",
                                           telegram_webhook_url=url)
        fake.webhook_url = url
        fake.webhook_last_error = "Connection refused"
    elif case == "no_chat_id":
        settings = settings.with_overrides(telegram_admin_chat_id=None)
    report, code = render(await check_telegram(settings))
    assert code == 1, report
    failures = [line for line in report.splitlines() if line.startswith("FAIL")]
    assert any(expected in line for line in failures), report


async def test_privacy_mode_is_only_a_note_for_an_admin_bot(telegram_settings, fake_telegram):
    fake_telegram.privacy_mode = True
    report, code = render(await check_telegram(telegram_settings))
    assert code == 0, report
    assert "note  privacy mode is on" in report and "sees every message anyway" in report


# --- link-telegram -------------------------------------------------------------------------------


async def test_link_telegram_refuses_an_automatic_account_clearly_and_moves_it_on_request(
    telegram_settings, make_user, capsys
):
    from core.users import customer_for_telegram

    boss = await make_user("director", username="boss")
    auto, created = await customer_for_telegram(555001, first_name="Olga")  # she wrote to the bot first
    assert created
    req = await svc.create_request(auto, title="Test from my phone", description="d")
    assert await link_telegram_command("boss", 555001) == 1
    err = capsys.readouterr().err
    assert "automatic customer account 'tg555001'" in err and "--move" in err
    assert (await User.get(id=boss.id)).telegram_id is None
    assert await link_telegram_command("boss", 555001, move=True) == 0
    assert "moved from 'tg555001'" in capsys.readouterr().out
    assert (await User.get(id=boss.id)).telegram_id == 555001
    assert (await User.get(id=auto.id)).telegram_id is None
    assert (await CustomerRequest.get(id=req.id)).customer_id == auto.id  # its requests stay its own
    entry = await AuditEntry.filter(action="account_linked", target_id=str(boss.id)).get()
    assert entry.actor_name == "helpdesk link-telegram" and entry.details["moved_from"] == "tg555001"


async def test_createuser_with_a_taken_telegram_id_points_to_link_telegram(telegram_settings, fake_telegram):
    from core.users import customer_for_telegram

    await customer_for_telegram(555002, first_name="Olga")
    env = cli_env(telegram_settings, fake_telegram)
    code, _, err = await run_cli(env, "createuser", "--username", "olga", "--role", "director",
                                 "--telegram-id", "555002")
    assert code == 1 and "helpdesk link-telegram olga 555002 --move" in err, err
    code, _, _ = await run_cli(env, "createuser", "--username", "olga", "--role", "director")
    assert code == 0
    code, out, err = await run_cli(env, "link-telegram", "olga", "555002", "--move")
    assert code == 0, err
    assert (await User.get(username="olga")).telegram_id == 555002


# --- an unlinked staff member is told their id ------------------------------------------------------


async def test_an_unlinked_person_in_the_group_is_told_their_telegram_id(
    telegram_settings, fake_telegram, make_user
):
    fake = fake_telegram
    customer = await make_user("customer")
    async with running_bot(telegram_settings):
        fake.message_update(fake.admin_chat_id, fake.user(7999, "Mallory"), "/queue")
        reply = await reply_containing(fake, fake.admin_chat_id, "7999")
        req = await svc.create_request(customer, title="Printer", description="d")
        card = await card_for(fake, req.id)
        press = fake.callback_update(fake.user(7999, "Mallory"), fake.admin_chat_id,
                                     card.result["message_id"], f"req:take:{req.id}")
        answer = await answer_for(fake, press)
    assert "helpdesk link-telegram ИМЯ 7999" in reply.params["text"]
    assert str(fake.admin_chat_id) in reply.params["text"]  # and the group's id
    assert answer.params["show_alert"] and "7999" in answer.params["text"]
    assert len(answer.params["text"]) <= 200


# --- webhook mode without a secret -----------------------------------------------------------------


async def test_webhook_mode_without_a_secret_is_refused_at_start(telegram_settings, fake_telegram):
    with pytest.raises(SettingsError, match="TELEGRAM_WEBHOOK_SECRET"):
        load_settings({"TELEGRAM_MODE": "webhook", "TELEGRAM_BOT_TOKEN": fake_telegram.token}, dotenv=False)
    settings = telegram_settings.with_overrides(telegram_mode="webhook", telegram_webhook_secret=None,
                                                telegram_webhook_url="https://desk.example.com/telegram/webhook/")
    with pytest.raises(RuntimeError, match="TELEGRAM_WEBHOOK_SECRET"):
        await start_bot(settings)
    assert not fake_telegram.calls_of("setWebhook"), "nothing was registered"
    code, _, err = await run_cli(cli_env(telegram_settings, fake_telegram, TELEGRAM_MODE="webhook"), "bot")
    assert code == 2 and "TELEGRAM_WEBHOOK_SECRET" in err
