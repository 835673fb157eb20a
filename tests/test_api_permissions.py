"""REST: the permission matrix. Customer, the assigned admin, another admin and a director
against take, complete, update, delete, messages, close, reopen and reassign.

Rules (core.permissions): customers never use /api/admin/ (403 {"detail"}); an admin manages
a request assigned to them or still open; a director manages all; complete needs the
assignee or a director (403 {"error"}); close/reopen/reassign are for directors; internal
notes are allowed to any staff on any request. A refused action changes nothing.
"""

from __future__ import annotations

import pytest

from tests.api_helpers import ADMIN, new_request


@pytest.fixture
async def cast(api, make_user, token_for):
    """Everyone in the matrix, with tokens, and a helper making a request taken by `owner`."""
    people = {
        "customer": await make_user("customer"),
        "owner": await make_user("admin"),
        "other": await make_user("admin"),
        "director": await make_user("director"),
    }
    tokens = {k: await token_for(u) for k, u in people.items()}

    async def taken_request() -> int:
        req = await new_request(api, tokens["customer"])
        r = await api.post(f"{ADMIN}{req['id']}/take/", tokens["owner"])
        assert r.status_code == 200, r.text
        return req["id"]

    async def open_request() -> int:
        return (await new_request(api, tokens["customer"]))["id"]

    return people, tokens, taken_request, open_request


async def snapshot(api, token: str, rid: int) -> tuple:
    req = (await api.get(f"{ADMIN}{rid}/", token)).json()
    msgs = (await api.get(f"{ADMIN}{rid}/messages/", token)).json()
    return req["status"], (req["assigned_admin"] or {}).get("id"), req["title"], len(msgs)


async def test_take_matrix(api, cast):
    people, tok, taken_request, open_request = cast
    rid = await open_request()
    r = await api.post(f"{ADMIN}{rid}/take/", tok["customer"])
    assert r.status_code == 403 and "detail" in r.json()
    r = await api.post(f"{ADMIN}{rid}/take/", tok["other"])
    assert r.status_code == 200 and r.json()["assigned_admin"]["id"] == people["other"].id
    before = await snapshot(api, tok["director"], rid)
    for who in ("owner", "director", "other"):
        r = await api.post(f"{ADMIN}{rid}/take/", tok[who])
        assert r.status_code == 400 and "error" in r.json(), who
    assert await snapshot(api, tok["director"], rid) == before
    r = await api.post(f"{ADMIN}{await open_request()}/take/", tok["director"])
    assert r.status_code == 200 and r.json()["status"] == "in_progress"


async def test_complete_matrix(api, cast):
    people, tok, taken_request, open_request = cast
    rid = await taken_request()
    before = await snapshot(api, tok["director"], rid)
    r = await api.post(f"{ADMIN}{rid}/complete/", tok["customer"])
    assert r.status_code == 403 and "detail" in r.json()
    r = await api.post(f"{ADMIN}{rid}/complete/", tok["other"])
    assert r.status_code == 403 and "error" in r.json()
    assert await snapshot(api, tok["director"], rid) == before
    r = await api.post(f"{ADMIN}{rid}/complete/", tok["owner"])
    assert r.status_code == 200 and r.json()["status"] == "completed"
    r = await api.post(f"{ADMIN}{rid}/complete/", tok["owner"])
    assert r.status_code == 400 and "error" in r.json()  # already completed
    r = await api.post(f"{ADMIN}{await taken_request()}/complete/", tok["director"])
    assert r.status_code == 200 and r.json()["status"] == "completed"
    # an open request cannot be completed, not even by a director
    r = await api.post(f"{ADMIN}{await open_request()}/complete/", tok["director"])
    assert r.status_code == 400 and "error" in r.json()


async def test_update_and_delete_matrix(api, cast):
    people, tok, taken_request, open_request = cast
    rid = await taken_request()
    before = await snapshot(api, tok["director"], rid)
    for who, code in (("customer", 403), ("other", 403)):
        r = await api.request("PATCH", f"{ADMIN}{rid}/", tok[who], json={"title": "взлом"})
        assert r.status_code == code and "detail" in r.json(), who
        r = await api.request("DELETE", f"{ADMIN}{rid}/", tok[who])
        assert r.status_code == code, who
    assert await snapshot(api, tok["director"], rid) == before
    r = await api.request("PATCH", f"{ADMIN}{rid}/", tok["owner"], json={"priority": "urgent"})
    assert r.status_code == 200 and r.json()["priority"] == "urgent"
    r = await api.request("PATCH", f"{ADMIN}{rid}/", tok["owner"], json={"status": "closed"})
    assert r.status_code == 400 and "status" in r.json()  # only directors set a status
    r = await api.request("PATCH", f"{ADMIN}{rid}/", tok["director"], json={"title": "Новое"})
    assert r.status_code == 200 and r.json()["title"] == "Новое"
    r = await api.request(
        "PUT", f"{ADMIN}{rid}/", tok["director"], json={"title": "П", "description": "Д"}
    )
    assert r.status_code == 200 and r.json()["description"] == "Д"
    # any admin may edit an open request
    orid = await open_request()
    r = await api.request("PATCH", f"{ADMIN}{orid}/", tok["other"], json={"category": "billing"})
    assert r.status_code == 200 and r.json()["category"] == "billing"
    # deleting is for directors, even for the assignee (tests/test_identity_object_rules.py)
    assert (await api.request("DELETE", f"{ADMIN}{rid}/", tok["owner"])).status_code == 403
    assert (await api.request("DELETE", f"{ADMIN}{rid}/", tok["director"])).status_code == 204
    assert (await api.get(f"{ADMIN}{rid}/", tok["director"])).status_code == 404
    assert (await api.request("DELETE", f"{ADMIN}{orid}/", tok["director"])).status_code == 204


async def test_messages_matrix(api, cast):
    people, tok, taken_request, open_request = cast
    rid = await taken_request()
    url = f"{ADMIN}{rid}/messages/"
    assert (await api.post(url, tok["customer"], json={"content": "x"})).status_code == 403
    assert (await api.get(url, tok["customer"])).status_code == 403
    r = await api.post(url, tok["other"], json={"content": "ответ не своему"})
    assert r.status_code == 403 and "detail" in r.json()
    r = await api.post(url, tok["other"], json={"content": "подсказка", "is_internal": True})
    assert r.status_code == 201 and r.json()["is_internal"] is True
    for who in ("owner", "director"):
        r = await api.post(url, tok[who], json={"content": f"ответ {who}"})
        assert r.status_code == 201 and r.json()["sender_type"] == "admin", who
    contents = [m["content"] for m in (await api.get(url, tok["other"])).json()]
    assert "ответ не своему" not in contents and contents[-2:] == ["ответ owner", "ответ director"]


async def test_close_reopen_reassign_matrix(api, cast):
    people, tok, taken_request, open_request = cast
    rid = await taken_request()
    await api.post(f"{ADMIN}{rid}/complete/", tok["owner"])
    for action in ("close", "reopen"):
        for who in ("owner", "other"):
            r = await api.post(f"{ADMIN}{rid}/{action}/", tok[who])
            assert r.status_code == 403 and "error" in r.json(), (action, who)
        r = await api.post(f"{ADMIN}{rid}/{action}/", tok["customer"])
        assert r.status_code == 403 and "detail" in r.json()
    r = await api.post(f"{ADMIN}{rid}/close/", tok["director"])
    assert r.status_code == 200 and r.json()["status"] == "closed"
    r = await api.post(f"{ADMIN}{rid}/close/", tok["director"])
    assert r.status_code == 400 and "error" in r.json()
    r = await api.post(f"{ADMIN}{rid}/reopen/", tok["director"])
    assert r.status_code == 200 and r.json()["status"] == "in_progress"

    body = {"admin_id": people["other"].id}
    for who in ("owner", "other"):
        r = await api.post(f"{ADMIN}{rid}/reassign/", tok[who], json=body)
        assert r.status_code == 403 and "error" in r.json(), who
    assert (
        await api.post(f"{ADMIN}{rid}/reassign/", tok["customer"], json=body)
    ).status_code == 403
    r = await api.post(f"{ADMIN}{rid}/reassign/", tok["director"], json=body)
    assert r.status_code == 200 and r.json()["assigned_admin"]["id"] == people["other"].id
    for bad in ({}, {"admin_id": "2"}, {"admin_id": people["customer"].id}, {"admin_id": 999999}):
        r = await api.post(f"{ADMIN}{rid}/reassign/", tok["director"], json=bad)
        assert r.status_code == 400 and "admin_id" in r.json(), bad
    # the new assignee now manages it, the old one no longer does
    assert (
        await api.post(f"{ADMIN}{rid}/messages/", tok["other"], json={"content": "беру"})
    ).status_code == 201
    assert (
        await api.post(f"{ADMIN}{rid}/messages/", tok["owner"], json={"content": "я"})
    ).status_code == 403
    for action in ("take", "complete", "close", "reopen", "reassign"):
        r = await api.post(f"{ADMIN}999999/{action}/", tok["director"], json=body)
        assert r.status_code == 404, action


async def test_twenty_admins_taking_at_once_over_rest_have_one_winner(api, make_user, token_for):
    import asyncio

    customer = await make_user("customer")
    admins = [await make_user("admin") for _ in range(20)]
    tokens = [await token_for(a) for a in admins]
    req = await new_request(api, await token_for(customer))
    url = f"{ADMIN}{req['id']}/take/"
    responses = await asyncio.gather(*(api.post(url, t) for t in tokens))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [400] * 19
    assert all("error" in r.json() for r in responses if r.status_code == 400)
    winner = next(r.json()["assigned_admin"]["id"] for r in responses if r.status_code == 200)
    final = (await api.get(f"{ADMIN}{req['id']}/", tokens[0])).json()
    assert final["assigned_admin"]["id"] == winner and final["status"] == "in_progress"
    msgs = (await api.get(f"{ADMIN}{req['id']}/messages/", tokens[0])).json()
    assert [m["message_type"] for m in msgs] == ["system"]
