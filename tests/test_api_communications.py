"""REST: /api/admin/internal-communications/ (the seed's InternalCommunication)."""

from __future__ import annotations

from tests.api_helpers import new_request

COMMS = "/api/admin/internal-communications/"

BODY = {
    "from_department": "Поддержка",
    "to_department": "Биллинг",
    "subject": "Двойное списание",
    "content": "Проверьте платёж",
}


async def test_admin_writes_to_another_department(api, make_user, token_for):
    a1, a2, a3, director, customer = (
        await make_user("admin"),
        await make_user("admin"),
        await make_user("admin"),
        await make_user("director"),
        await make_user("customer"),
    )
    t1, t2, t3, td = (
        await token_for(a1),
        await token_for(a2),
        await token_for(a3),
        await token_for(director),
    )
    req = await new_request(api, await token_for(customer))
    r = await api.post(
        COMMS, t1, json={**BODY, "request": req["id"], "priority": "high", "participants": [a2.id]}
    )
    assert r.status_code == 201, r.text
    comm = r.json()
    assert (
        comm["sender"] == a1.id and comm["participants"] == [a2.id] and comm["request"] == req["id"]
    )
    assert comm["status"] == "pending" and comm["priority"] == "high"
    assert set(comm) == {
        "id",
        "request",
        "from_department",
        "to_department",
        "subject",
        "content",
        "priority",
        "status",
        "sender",
        "participants",
        "created_at",
    }

    # the participant reads it and marks it replied; a bystander admin never sees it
    assert (await api.get(f"{COMMS}{comm['id']}/", t2)).json()["subject"] == "Двойное списание"
    r = await api.request("PATCH", f"{COMMS}{comm['id']}/", t2, json={"status": "replied"})
    assert r.status_code == 200 and r.json()["status"] == "replied"
    assert (await api.get(f"{COMMS}{comm['id']}/", t3)).status_code == 404
    assert (await api.get(COMMS, t3)).json()["count"] == 0
    assert (await api.get(COMMS, td)).json()["count"] == 1  # directors see everything

    r = await api.request(
        "PUT",
        f"{COMMS}{comm['id']}/",
        t1,
        json={**BODY, "subject": "Новая тема", "participants": []},
    )
    assert (
        r.status_code == 200
        and r.json()["subject"] == "Новая тема"
        and r.json()["participants"] == []
    )
    r = await api.request("PUT", f"{COMMS}{comm['id']}/", t1, json={"subject": "только тема"})
    assert r.status_code == 400 and "content" in r.json()

    page = (await api.get(COMMS + "?status=replied", t1)).json()
    assert page["count"] == 1 and page["results"][0]["id"] == comm["id"]
    assert (await api.get(COMMS + "?status=pending", t1)).json()["count"] == 0


async def test_communications_list_is_paginated(api, make_user, token_for):
    admin = await make_user("admin")
    tok = await token_for(admin)
    for i in range(21):
        r = await api.post(COMMS, tok, json={**BODY, "subject": f"#{i}"})
        assert r.status_code == 201
    page1 = (await api.get(COMMS, tok)).json()
    assert page1["count"] == 21 and len(page1["results"]) == 20 and page1["previous"] is None
    assert page1["results"][0]["subject"] == "#20"  # newest first
    assert page1["next"].endswith("?page=2")
    page2 = (await api.get(COMMS + "?page=2", tok)).json()
    assert [c["subject"] for c in page2["results"]] == ["#0"] and page2["next"] is None
    assert page2["previous"].endswith(COMMS)
    assert (await api.get(COMMS + "?page=3", tok)).status_code == 404


async def test_communications_bad_input_and_access(api, make_user, token_for):
    admin, customer = await make_user("admin"), await make_user("customer")
    ta, tc = await token_for(admin), await token_for(customer)
    assert (await api.get(COMMS, tc)).status_code == 403
    assert (await api.post(COMMS, tc, json=BODY)).status_code == 403
    assert (await api.get(COMMS)).status_code == 401
    cases = [
        ({k: v for k, v in BODY.items() if k != "subject"}, "subject"),
        ({**BODY, "priority": "urgent"}, "priority"),  # communications know low/medium/high only
        ({**BODY, "priority": ["high"]}, "priority"),
        ({**BODY, "status": "archived"}, "status"),
        ({**BODY, "from_department": "x" * 51}, "from_department"),
        ({**BODY, "subject": "x" * 201}, "subject"),
        ({**BODY, "content": 42}, "content"),
        ({**BODY, "participants": [customer.id, 999999]}, "participants"),
        ({**BODY, "participants": "all"}, "participants"),
        ({**BODY, "request": 999999}, "request"),
        ({**BODY, "request": "1"}, "request"),
    ]
    for body, field in cases:
        r = await api.post(COMMS, ta, json=body)
        assert r.status_code == 400 and field in r.json(), (body, r.text)
    r = await api.post(COMMS, ta, content=b"[]", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    comm = (await api.post(COMMS, ta, json=BODY)).json()
    r = await api.request("PATCH", f"{COMMS}{comm['id']}/", ta, json={"participants": [999999]})
    assert r.status_code == 400 and "participants" in r.json()
    r = await api.request("PATCH", f"{COMMS}{comm['id']}/", ta, json={"status": 1})
    assert r.status_code == 400
    assert (await api.get(f"{COMMS}999999/", ta)).status_code == 404
    assert (
        await api.request("PATCH", f"{COMMS}999999/", ta, json={"status": "read"})
    ).status_code == 404
    assert (await api.get(COMMS + "?status=nope", ta)).status_code == 400
    assert (await api.get(COMMS + "?page=abc", ta)).status_code == 404
