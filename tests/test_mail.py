"""E-mail both ways against real SMTP servers on loopback: the desk sends through an
aiosmtpd server that records what arrives (and refuses on purpose), and customers' replies
are sent with aiosmtplib and smtplib to the desk's own listener. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import smtplib
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import aiosmtplib
import pytest

from bootstrap.app import create_app
from core import requests as svc
from core import runtime
from core.settings import Settings
from db.models import CustomerRequest, InboundMail, MailOutbox, RequestMessage
from mail.addresses import reply_address
from mail.quotes import strip_quoted
from tests.live import Api, serve
from tests.procs import free_port

DOMAIN = "desk.test"
FORM = {"name": "Анна Петрова", "email": "anna@example.org", "title": "Не приходит заказ",
        "description": "Заказ 42 не пришёл", "category": "order"}


class MailCatcher:
    """An SMTP server (aiosmtpd) in the test's loop: records every message; `refuse(...)`
    scripts answers to DATA (e.g. "451 4.3.0 busy") for the next messages."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.answers: list[str] = []
        self.tries = 0
        self.server = None
        self.port = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.tries += 1
        if self.answers:
            return self.answers.pop(0)
        self.messages.append(BytesParser(policy=policy.default).parsebytes(envelope.content))
        return "250 OK"

    async def start(self) -> MailCatcher:
        from aiosmtpd.smtp import SMTP

        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: SMTP(self, hostname="catcher"),
                                               host="127.0.0.1", port=0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.server.close()

    async def wait(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        for _ in range(int(timeout / 0.05)):
            if len(self.messages) >= count:
                return self.messages
            await asyncio.sleep(0.05)
        raise AssertionError(f"expected {count} mails, got {[m['Subject'] for m in self.messages]}")


@pytest.fixture
async def catcher():
    c = await MailCatcher().start()
    try:
        yield c
    finally:
        await c.stop()


@pytest.fixture
def mail_settings(db_url: str, tmp_path: Path, catcher: MailCatcher) -> Settings:
    s = Settings(
        database_url=db_url, media_root=tmp_path / "media", port=0,
        public_url="https://support.desk.test",
        smtp_url=f"smtp://127.0.0.1:{catcher.port}", mail_from="Support <support@desk.test>",
        mail_reply_domain=DOMAIN, mail_inbound_port=free_port(),
        extra={"mail_poll": 0.1, "mail_backoff": 0.2, "webhooks": False},
    )
    runtime.configure(s)
    return s


@pytest.fixture
async def desk(mail_settings):
    async with serve(create_app(mail_settings)) as base:
        client = Api(base)
        try:
            yield client
        finally:
            await client.close()


@pytest.fixture
async def inbound(mail_settings):
    from mail.runtime import start_mail_inbound

    rt = await start_mail_inbound(mail_settings)
    try:
        yield rt
    finally:
        await rt.stop()


async def submit_form(desk: Api, **changes: str) -> tuple[CustomerRequest, str]:
    r = await desk.post("/api/public/requests/", data={**FORM, **changes},
                        headers={"Accept": "application/json"})
    assert r.status_code == 201, r.text
    key = r.json()["access_key"]
    return await CustomerRequest.get(access_key=key).prefetch_related("customer"), key


def body_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


# --- out ---------------------------------------------------------------------------------------


async def test_web_form_customer_gets_a_confirmation_with_the_private_link(desk, catcher):
    req, key = await submit_form(desk)
    [mail] = await catcher.wait(1)
    assert mail["To"] == "anna@example.org"
    assert mail["From"] == "Support <support@desk.test>"
    assert f"#{req.id}" in mail["Subject"] and "Не приходит заказ" in mail["Subject"]
    assert f"https://support.desk.test/r/{key}" in body_of(mail)
    assert mail["Reply-To"] == reply_address(req.id, key, DOMAIN)
    assert mail["Message-ID"] == f"<request-{req.id}@{DOMAIN}>"
    assert mail["Auto-Submitted"] == "auto-generated"
    # The server has the message once it answered DATA; the desk marks the row sent after
    # it read that answer, a moment later.
    for _ in range(100):
        row = await MailOutbox.get(request_id=req.id)
        if row.status == "sent":
            break
        await asyncio.sleep(0.05)
    assert row.status == "sent" and row.attempts == 1


async def test_english_customers_get_english_mail(desk, catcher):
    r = await desk.post("/api/public/requests/?lang=en", data=FORM,
                        headers={"Accept": "application/json"})
    assert r.status_code == 201
    [mail] = await catcher.wait(1)
    assert mail["Subject"].startswith("[#") and "We received your request" in mail["Subject"]


async def test_replies_and_status_changes_are_mailed_but_internal_notes_never(
    desk, catcher, make_user
):
    req, key = await submit_form(desk)
    await catcher.wait(1)
    admin = await make_user("admin", first_name="Иван", last_name="Сидоров")
    await svc.take_request(admin, req.id)
    await svc.post_message(admin, req.id, "Секретная заметка: клиент VIP", is_internal=True)
    await svc.post_message(admin, req.id, "Заказ передан курьеру, будет завтра.")
    await svc.complete_request(admin, req.id)
    mails = await catcher.wait(4)
    await asyncio.sleep(0.5)  # nothing more follows
    subjects = [m["Subject"] for m in catcher.messages]
    assert len(catcher.messages) == 4, subjects
    status1, reply, status2 = catcher.messages[1:]
    assert "В работе" in status1["Subject"] and "В работе" in body_of(status1)
    assert "Иван Сидоров" in body_of(reply) and "Заказ передан курьеру" in body_of(reply)
    assert "Выполнен" in status2["Subject"]
    assert f"https://support.desk.test/r/{key}#rating-section" in body_of(status2)
    assert "#rating-section" not in body_of(status1)
    for mail in mails:
        assert "Секретная заметка" not in mail.as_string()
        assert mail["Reply-To"] == reply_address(req.id, key, DOMAIN)
    assert reply["In-Reply-To"] == f"<request-{req.id}@{DOMAIN}>"


async def test_mailed_replies_name_staff_by_display_name_only(desk, catcher, make_user):
    """A staff member without a name is "Поддержка" in the mail, never their username
    (docs/security.md, Access model: customers see staff by display name only)."""
    req, _ = await submit_form(desk)
    await catcher.wait(1)
    admin = await make_user("admin", username="ops_login_9", first_name="", last_name="",
                            email="ops9@corp.example")
    await svc.take_request(admin, req.id)
    await svc.post_message(admin, req.id, "Проверяем заказ.")
    await catcher.wait(3)
    text = "\n".join(body_of(m) for m in catcher.messages)
    assert "Проверяем заказ." in text and "Поддержка ответил" in text
    assert "ops_login_9" not in text and "ops9@corp.example" not in text


async def test_requests_from_other_channels_get_no_mail(desk, catcher, make_user):
    customer = await make_user("customer", email="bob@example.org")
    admin = await make_user("admin")
    req = await svc.create_request(customer, title="API request", description="d")
    await svc.post_message(admin, req.id, "answer")
    await asyncio.sleep(0.6)
    assert catcher.messages == [] and await MailOutbox.all().count() == 0


async def test_outgoing_mail_is_retried_until_the_server_takes_it(desk, catcher):
    catcher.answers = ["451 4.3.0 Mailbox busy, try later", "421 4.7.0 Too many connections"]
    req, _ = await submit_form(desk)
    [mail] = await catcher.wait(1, timeout=15)
    row = await MailOutbox.get(request_id=req.id)
    for _ in range(40):
        if row.status == "sent":
            break
        await asyncio.sleep(0.05)
        row = await MailOutbox.get(request_id=req.id)
    assert row.status == "sent" and row.attempts == 3 and catcher.tries == 3
    assert mail["Message-ID"] == row.message_id


async def test_a_refused_address_fails_the_mail_without_retrying(desk, catcher):
    catcher.answers = ["550 5.1.1 No such user"]
    req, _ = await submit_form(desk)
    for _ in range(100):
        row = await MailOutbox.filter(request_id=req.id).first()
        if row is not None and row.status == "failed":
            break
        await asyncio.sleep(0.05)
    assert row is not None and row.status == "failed" and row.attempts == 1 and "550" in row.last_error
    await asyncio.sleep(0.5)
    assert catcher.tries == 1


async def test_without_smtp_url_nothing_changes(settings, make_user):
    assert not settings.mail_enabled
    async with serve(create_app(settings)) as base:
        api = Api(base)
        try:
            r = await api.post("/api/public/requests/", data=FORM,
                               headers={"Accept": "application/json"})
            assert r.status_code == 201
            req = await CustomerRequest.get(access_key=r.json()["access_key"])
            await svc.post_message(await make_user("admin"), req.id, "hello")
            await asyncio.sleep(0.5)
            assert await MailOutbox.all().count() == 0
        finally:
            await api.close()


# --- in ----------------------------------------------------------------------------------------


def reply_mail(to: str, text: str, message_id: str = "<r1@mail.example.org>",
               **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Анна <anna@example.org>"
    msg["To"] = to
    msg["Subject"] = "Re: [#1] Ответ по запросу"
    msg["Message-ID"] = message_id
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(text)
    return msg


async def test_a_reply_by_email_lands_in_the_thread_without_the_quote(
    desk, catcher, inbound, mail_settings
):
    req, key = await submit_form(desk)
    address = reply_address(req.id, key, DOMAIN)
    text = ("Спасибо, жду курьера.\nАдрес тот же.\n\n"
            "On Mon, 1 Dec 2026 at 10:00, Support <support@desk.test> wrote:\n"
            "> Заказ передан курьеру\n> будет завтра\n")
    await aiosmtplib.send(reply_mail(address, text), hostname="127.0.0.1",
                          port=mail_settings.mail_inbound_port)
    msgs = await RequestMessage.filter(request_id=req.id).order_by("id")
    assert [m.content for m in msgs][-1] == "Спасибо, жду курьера.\nАдрес тот же."
    last = msgs[-1]
    assert last.sender_id == req.customer.id and last.sender_type == "customer"
    assert last.source == "email" and not last.is_internal
    # The same message again (the sender did not see our 250): not posted twice.
    await aiosmtplib.send(reply_mail(address, text), hostname="127.0.0.1",
                          port=mail_settings.mail_inbound_port)
    assert await RequestMessage.filter(request_id=req.id, source="email").count() == 1
    assert await InboundMail.filter(request_id=req.id).count() == 1
    # The customer's page shows it too.
    state = (await desk.get(f"/api/public/requests/{key}/")).json()
    assert state["messages"][-1]["content"] == "Спасибо, жду курьера.\nАдрес тот же."


async def test_forged_and_unknown_reply_addresses_are_refused(desk, catcher, inbound, mail_settings):
    req, key = await submit_form(desk)
    other, other_key = await submit_form(desk, email="eve@example.org")
    good = reply_address(req.id, key, DOMAIN)
    forged = [
        f"req-{req.id}-{'0' * 24}@{DOMAIN}",                       # wrong secret
        reply_address(req.id, other_key, DOMAIN),                  # another request's secret
        f"req-{req.id}-{good.split('-')[2].split('@')[0]}@evil.test",  # another domain
        f"req-999999-{'a' * 24}@{DOMAIN}",                         # no such request
        f"support@{DOMAIN}", "someone@example.com",                # not a reply address
        f"req-{2**40}-{'a' * 24}@{DOMAIN}",                        # beyond any id
    ]
    port = mail_settings.mail_inbound_port

    def send_sync(to: str) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("eve@example.org", [to], reply_mail(to, "hi").as_bytes())

    for to in forged:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
            await asyncio.to_thread(send_sync, to)
        assert err.value.recipients[to][0] == 550, to
    assert await RequestMessage.filter(source="email").count() == 0
    await asyncio.to_thread(send_sync, good)  # the real one still works
    assert await RequestMessage.filter(request_id=req.id, source="email").count() == 1


async def test_replies_to_a_closed_request_bounce_and_auto_replies_are_dropped(
    desk, catcher, inbound, mail_settings, make_user
):
    req, key = await submit_form(desk)
    address = reply_address(req.id, key, DOMAIN)
    port = mail_settings.mail_inbound_port
    await aiosmtplib.send(reply_mail(address, "I am out of office", "<ooo@x>",
                                     Auto_Submitted="auto-replied"),
                          hostname="127.0.0.1", port=port)
    assert await RequestMessage.filter(request_id=req.id, source="email").count() == 0
    director = await make_user("director")
    await svc.take_request(director, req.id)
    await svc.complete_request(director, req.id)
    await svc.close_request(director, req.id)
    with pytest.raises(aiosmtplib.SMTPDataError) as err:
        await aiosmtplib.send(reply_mail(address, "one more thing", "<late@x>"),
                              hostname="127.0.0.1", port=port)
    assert err.value.code == 550
    assert await RequestMessage.filter(request_id=req.id, source="email").count() == 0
    assert not await InboundMail.filter(request_id=req.id).exists()


async def test_html_only_replies_are_read_as_text(desk, catcher, inbound, mail_settings):
    req, key = await submit_form(desk)
    msg = EmailMessage()
    msg["From"] = "anna@example.org"
    msg["To"] = reply_address(req.id, key, DOMAIN)
    msg["Subject"] = "Re"
    msg["Message-ID"] = "<html@x>"
    msg.set_content("<html><body><p>Всё получила &amp; спасибо!</p>"
                    "<blockquote>старый текст</blockquote></body></html>", subtype="html")
    await aiosmtplib.send(msg, hostname="127.0.0.1", port=mail_settings.mail_inbound_port)
    last = await RequestMessage.filter(request_id=req.id).order_by("-id").first()
    assert last.content == "Всё получила & спасибо!"


# --- quote stripping ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("Thanks!\n\nOn Tue, Dec 1, 2026 at 9:00 AM Support <s@d.test> wrote:\n> old\n", "Thanks!"),
    ("Thanks!\n\nOn Tue, Dec 1, 2026 at 9:00 AM Support\n<s@d.test> wrote:\n> old\n", "Thanks!"),
    ("Спасибо!\n\n1 дек. 2026 г., в 10:00, Поддержка <s@d.test> написал(а):\n> старое\n",
     "Спасибо!"),
    ("Ok\n\n-----Original Message-----\nFrom: Support\nSent: today\n\nold", "Ok"),
    ("Ok\n\n________________________________\nFrom: Support <s@d.test>\nSent: today\nold", "Ok"),
    ("Line one\n> quoted\nLine two\n", "Line one\nLine two"),
    ("Answer\n\n-- \nAnna Petrova\n+7 900 000", "Answer"),
    ("Answer\n\nSent from my iPhone", "Answer"),
    ("From: my account page I cannot pay", "From: my account page I cannot pay"),
    ("Plain text without any quote", "Plain text without any quote"),
])
def test_quoted_text_and_signatures_are_stripped(text, expected):
    assert strip_quoted(text) == expected


def test_quote_stripping_is_linear_on_hostile_input():
    import time

    text = ("On " + "x" * 250 + "\n") * 20_000 + ">" * 100_000
    started = time.perf_counter()
    strip_quoted(text)
    assert time.perf_counter() - started < 2.0


async def test_helpdesk_mail_command_receives_replies(db_url, mail_settings, make_user):
    """`helpdesk mail` (its own process) accepts a reply and stores it in the thread."""
    import os
    import signal
    import subprocess
    import sys

    from core.security import new_access_key
    from tests.procs import ROOT, wait_port

    customer = await make_user("customer", email="carl@example.org")
    req = await svc.create_request(customer, title="By mail", description="d")
    key = new_access_key()
    await CustomerRequest.filter(id=req.id).update(access_key=key, source="web")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "MAIL_REPLY_DOMAIN": DOMAIN,
           "MAIL_INBOUND_PORT": str(port), "HELPDESK_ENV_FILE": "/nonexistent",
           "LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "bootstrap.cli", "mail"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        await asyncio.to_thread(wait_port, port, 60, proc)
        await aiosmtplib.send(reply_mail(reply_address(req.id, key, DOMAIN), "Got it, thanks"),
                              hostname="127.0.0.1", port=port)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    last = await RequestMessage.filter(request_id=req.id).order_by("-id").first()
    assert last.content == "Got it, thanks" and last.source == "email"
    assert proc.returncode == 0, proc.stdout.read().decode(errors="replace")[-2000:]


def test_helpdesk_run_starts_the_listener_when_mail_inbound_port_is_set(tmp_path):
    """`helpdesk run` (one process) with MAIL_INBOUND_PORT: the API and the SMTP listener
    come up together, and a reply sent to the listener lands in the thread."""
    import os
    import signal
    import subprocess
    import sys

    import httpx

    from tests.procs import ROOT, wait_port

    api_port, smtp_port = free_port(), free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite://{tmp_path}/run.sqlite3", "PORT": str(api_port),
           "HOST": "127.0.0.1", "TELEGRAM_MODE": "off", "SCHEDULER_ENABLED": "false",
           "MAIL_REPLY_DOMAIN": DOMAIN, "MAIL_INBOUND_PORT": str(smtp_port),
           "HELPDESK_ENV_FILE": "/nonexistent", "LOG_LEVEL": "WARNING",
           "MEDIA_ROOT": str(tmp_path / "media")}
    for name in ("REDIS_URL", "TELEGRAM_BOT_TOKEN", "SMTP_URL", "WORKERS"):
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-m", "bootstrap.cli", "run"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_port(api_port, 60, proc)
        wait_port(smtp_port, 30, proc)
        r = httpx.post(f"http://127.0.0.1:{api_port}/api/public/requests/", data=FORM,
                       headers={"Accept": "application/json"}, timeout=10)
        assert r.status_code == 201, r.text
        key = r.json()["access_key"]
        req_id = r.json()["request"]["id"]
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
            to = reply_address(req_id, key, DOMAIN)
            client.sendmail("anna@example.org", [to], reply_mail(to, "Replying by mail").as_bytes())
        state = httpx.get(f"http://127.0.0.1:{api_port}/api/public/requests/{key}/", timeout=10).json()
        assert [m["content"] for m in state["messages"]][-1] == "Replying by mail"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
