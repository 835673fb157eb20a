# ruff: noqa: F811  (the mail fixtures of tests/test_mail.py, imported, are parameters here)
"""Verifying a web contact's address by the link in its confirmation mail: the mail goes
through a real aiosmtpd server on loopback; following the link flips what staff see
(`customer_email_verified`); reused, forged, foreign and expired links are refused with a
4xx page and change nothing. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest

from db.models import User
from tests.api_helpers import ADMIN
from tests.test_mail import body_of, catcher, desk, mail_settings, submit_form  # noqa: F401

LINK = re.compile(r"https://support\.desk\.test(/r/[A-Za-z0-9_-]+/verify/[A-Za-z0-9_-]+)")


async def mailed_link(catcher, count: int = 1) -> str:
    mails = await catcher.wait(count)
    [path] = LINK.findall(body_of(mails[count - 1]))
    return path


async def staff_sees_verified(desk, token: str, request_id: int) -> bool:
    r = await desk.get(f"{ADMIN}{request_id}/", token)
    assert r.status_code == 200, r.text
    return r.json()["customer_email_verified"]


@pytest.fixture
async def staff_token(make_user, token_for):
    return await token_for(await make_user("admin"))


async def test_the_mailed_link_verifies_the_address_once(desk, catcher, staff_token):
    req, key = await submit_form(desk)
    path = await mailed_link(catcher)
    assert path.startswith(f"/r/{key}/verify/")
    user = await User.get(id=req.customer_id)
    assert user.email_verify_hash and path.rsplit("/", 1)[1] not in user.email_verify_hash
    assert await staff_sees_verified(desk, staff_token, req.id) is False

    r = await desk.get(path)
    assert r.status_code == 200
    assert "Адрес подтверждён" in r.text and "anna@example.org" in r.text
    assert "<script>" not in r.text and f'href="/r/{key}"' in r.text
    assert await staff_sees_verified(desk, staff_token, req.id) is True

    again = await desk.get(path)  # single use
    assert again.status_code == 404 and "уже использована" in again.text


async def test_the_confirmation_page_speaks_english(desk, catcher):
    r = await desk.post("/api/public/requests/?lang=en", data={
        "name": "Ann", "email": "ann@example.org", "title": "Parcel", "description": "Late",
        "category": "order"}, headers={"Accept": "application/json"})
    assert r.status_code == 201
    path = await mailed_link(catcher)
    assert "Please confirm that this address is yours" in body_of(catcher.messages[0])
    page = await desk.get(path + "?lang=en")
    assert page.status_code == 200 and "Address confirmed" in page.text


async def test_forged_foreign_and_parallel_links(desk, catcher, staff_token, make_user):
    req1, key1 = await submit_form(desk)
    path1 = await mailed_link(catcher, 1)
    req2, key2 = await submit_form(desk, email="other@example.org")
    path2 = await mailed_link(catcher, 2)
    token1, token2 = path1.rsplit("/", 1)[1], path2.rsplit("/", 1)[1]
    forged = token1[:-4] + ("AAAA" if not token1.endswith("AAAA") else "BBBB")
    for path in (f"/r/{key1}/verify/{forged}", f"/r/{key1}/verify/{token2}",
                 f"/r/{key1}/verify/x", f"/r/{key1}/verify/{'é' * 30}"):
        r = await desk.get(path)
        assert r.status_code == 404, path
        assert "Ссылка не работает" in r.text or "не найдено" in r.text.lower()
    r = await desk.get(f"/r/{'k' * 40}/verify/{token1}")  # a wrong key
    assert r.status_code == 404
    assert await staff_sees_verified(desk, staff_token, req1.id) is False
    assert await staff_sees_verified(desk, staff_token, req2.id) is False
    # of parallel clicks exactly one wins
    answers = await asyncio.gather(*(desk.get(path1) for _ in range(6)))
    assert sorted(a.status_code for a in answers) == [200] + [404] * 5
    assert await staff_sees_verified(desk, staff_token, req1.id) is True
    assert await staff_sees_verified(desk, staff_token, req2.id) is False


async def test_an_expired_link_is_refused_and_changes_nothing(desk, catcher, staff_token):
    req, _ = await submit_form(desk)
    path = await mailed_link(catcher)
    await User.filter(id=req.customer_id).update(
        email_verify_expires=datetime.now(UTC) - timedelta(minutes=1))
    r = await desk.get(path)
    assert r.status_code == 410 and "истёк" in r.text
    assert await staff_sees_verified(desk, staff_token, req.id) is False


async def test_verifying_never_merges_the_contact_into_the_account(
    desk, catcher, staff_token, make_user
):
    alice = await make_user("customer", email="anna@example.org", password="pw-Alice-123")
    req, _ = await submit_form(desk)
    path = await mailed_link(catcher)
    assert (await desk.get(path)).status_code == 200
    contact = await User.get(id=req.customer_id)
    await req.refresh_from_db()
    assert contact.id != alice.id and contact.is_web_contact and contact.email_verified
    assert req.customer_id == contact.id
    assert await User.filter(email="anna@example.org").count() == 2
