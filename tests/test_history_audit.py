"""History of every change to a request, and the directors' audit log (REST, both backends)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core import events
from core import requests as svc
from core.errors import Conflict
from core.users import link_telegram
from db.models import AuditEntry, CustomerRequest, RequestHistory
from tests.api_helpers import ADMIN, new_request


def history_url(request_id: int) -> str:
    return f"{ADMIN}{request_id}/history/"


async def all_history(api, token: str, request_id: int) -> list[dict]:
    rows: list[dict] = []
    url: str | None = history_url(request_id)
    while url:
        r = await api.get(url.replace(api.base, ""), token)
        assert r.status_code == 200, r.text
        rows += r.json()["results"]
        url = r.json()["next"]
    return rows


async def test_every_change_to_a_request_is_in_its_history_with_actor_and_channel(
    api, make_user, token_for
):
    customer = await make_user("customer", first_name="Ivan", last_name="Petrov")
    anna = await make_user("admin", first_name="Anna", last_name="Smirnova")
    boris = await make_user("admin", first_name="Boris", last_name="Orlov")
    boss = await make_user("director", first_name="Olga", last_name="Boss")
    ta, td = await token_for(anna), await token_for(boss)
    req = await new_request(api, await token_for(customer), title="Printer", tags=["hw"])
    rid = req["id"]
    assert (await api.post(f"{ADMIN}{rid}/take/", ta)).status_code == 200
    r = await api.request("PATCH", f"{ADMIN}{rid}/", ta, json={
        "priority": "urgent", "category": "technical", "title": "Printer jams",
        "description": "Paper jam on tray 2", "tags": ["hw", "printer"],
        "estimated_resolution_time": "2030-01-02T10:00:00Z",
    })
    assert r.status_code == 200, r.text
    # a PATCH that changes nothing leaves no trace
    assert (await api.request("PATCH", f"{ADMIN}{rid}/", ta, json={"priority": "urgent"})).status_code == 200
    assert (await api.post(f"{ADMIN}{rid}/reassign/", td, json={"admin_id": boris.id})).status_code == 200
    assert (await api.post(f"{ADMIN}{rid}/complete/", td)).status_code == 200
    assert (await api.post(f"{ADMIN}{rid}/close/", td)).status_code == 200
    assert (await api.post(f"{ADMIN}{rid}/reopen/", td)).status_code == 200

    rows = await all_history(api, ta, rid)
    got = [(h["field"], h["old"], h["new"], h["actor_name"]) for h in rows]
    anna_ref = {"id": anna.id, "name": "Anna Smirnova"}
    boris_ref = {"id": boris.id, "name": "Boris Orlov"}
    assert got == [
        ("created", None, "Printer", "Ivan Petrov"),
        ("status", "open", "in_progress", "Anna Smirnova"),
        ("assigned_admin", None, anna_ref, "Anna Smirnova"),
        ("priority", "medium", "urgent", "Anna Smirnova"),
        ("category", "general", "technical", "Anna Smirnova"),
        ("title", "Printer", "Printer jams", "Anna Smirnova"),
        ("description", req["description"], "Paper jam on tray 2",
         "Anna Smirnova"),
        ("tags", ["hw"], ["hw", "printer"], "Anna Smirnova"),
        ("estimated_resolution_time", None, "2030-01-02T10:00:00Z", "Anna Smirnova"),
        ("assigned_admin", anna_ref, boris_ref, "Olga Boss"),
        ("status", "in_progress", "completed", "Olga Boss"),
        ("status", "completed", "closed", "Olga Boss"),
        ("status", "closed", "in_progress", "Olga Boss"),
    ]
    assert {h["channel"] for h in rows} == {"rest"}
    assert rows[1]["actor_id"] == anna.id and rows[-1]["actor_id"] == boss.id
    ids = [h["id"] for h in rows]
    assert ids == sorted(ids)  # oldest first
    assert all(h["at"].endswith("Z") for h in rows)


async def test_history_is_paginated_like_drf_and_only_for_staff(api, make_user, token_for):
    customer = await make_user("customer")
    admin = await make_user("admin")
    ta, tc = await token_for(admin), await token_for(customer)
    req = await new_request(api, tc)
    for n in range(24):  # 24 title changes + "created" = 25 rows
        r = await api.request("PATCH", f"{ADMIN}{req['id']}/", ta, json={"title": f"t{n}"})
        assert r.status_code == 200
    first = (await api.get(history_url(req["id"]), ta)).json()
    assert first["count"] == 25 and len(first["results"]) == 20 and first["previous"] is None
    assert first["next"].endswith(f"/{req['id']}/history/?page=2")
    second = (await api.get(history_url(req["id"]) + "?page=2", ta)).json()
    assert [h["new"] for h in second["results"]] == [f"t{n}" for n in range(19, 24)]
    assert second["next"] is None and second["previous"]
    assert (await api.get(history_url(req["id"]) + "?page=3", ta)).status_code == 404
    assert (await api.get(history_url(req["id"]), tc)).status_code == 403
    assert (await api.get(history_url(req["id"]))).status_code == 401
    assert (await api.get(history_url(999999), ta)).status_code == 404


async def test_a_refused_or_rolled_back_change_leaves_no_history(settings, make_user, monkeypatch):
    customer = await make_user("customer")
    anna, boris = await make_user("admin"), await make_user("admin")
    req = await svc.create_request(customer, title="t", description="d")
    await svc.take_request(anna, req.id)
    with pytest.raises(Conflict):
        await svc.take_request(boris, req.id)
    assert await RequestHistory.filter(request_id=req.id, field="assigned_admin").count() == 1

    # The history row is written in the change's transaction: when anything after it in
    # that transaction fails, neither the change nor its history row exist.
    async def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(events, "record_event", broken)
    with pytest.raises(RuntimeError):
        await svc.update_request(anna, req.id, {"priority": "high"})
    monkeypatch.undo()
    assert (await CustomerRequest.get(id=req.id)).priority == "medium"
    assert not await RequestHistory.filter(request_id=req.id, field="priority").exists()


async def test_channel_is_the_entry_points(settings, make_user):
    """A direct call (a script, the CLI) is `cli`; the scheduler's auto-close is
    `scheduler`, with no actor (the desk did it)."""
    from scheduler.runtime import SchedulerRuntime

    customer = await make_user("customer")
    admin = await make_user("admin")
    req = await svc.create_request(customer, title="t", description="d")
    await svc.take_request(admin, req.id)
    await svc.complete_request(admin, req.id)
    long_ago = datetime.now(UTC) - timedelta(days=30)
    await CustomerRequest.filter(id=req.id).update(status_changed_at=long_ago, last_message_at=long_ago)
    runtime = SchedulerRuntime(settings)
    assert await runtime.fire("auto_close", datetime.now(UTC).replace(second=0, microsecond=0))
    assert (await CustomerRequest.get(id=req.id)).status == "closed"
    rows = await RequestHistory.filter(request_id=req.id, field="status").order_by("id")
    assert [(r.channel, r.actor_id) for r in rows] == [
        ("cli", admin.id), ("cli", admin.id), ("scheduler", None)
    ]
    assert rows[-1].new_value == '"closed"'


async def test_web_form_request_history_says_web(settings, make_user):
    import httpx

    from bootstrap.app import create_app
    from tests.live import serve

    async with serve(create_app(settings)) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            r = await client.post("/api/public/requests/", data={
                "name": "Anna", "email": "anna@example.com", "title": "Hello", "description": "d",
            }, headers={"Accept": "application/json"})
            assert r.status_code == 201
            row = await RequestHistory.get(field="created")
            assert row.channel == "web" and row.new_value == '"Hello"'


# --- audit log ---------------------------------------------------------------------------

AUDIT = "/api/admin/audit-log/"


async def test_audit_log_records_logins_tokens_links_and_deletes_for_directors(
    api, make_user, token_for
):
    boss = await make_user("director", username="boss", password="boss-pass-1")
    anna = await make_user("admin", username="anna", password="anna-pass-1")
    customer = await make_user("customer")
    assert (await api.post("/api/auth/token/", json={"username": "anna", "password": "nope"})).status_code == 400
    assert (await api.post("/api/auth/token/", json={"username": "ghost", "password": "x"})).status_code == 400
    r = await api.post("/api/auth/token/", json={"username": "boss", "password": "boss-pass-1"})
    td = r.json()["token"]
    await link_telegram(boss, "anna", 777001)
    req = await new_request(api, await token_for(customer))
    assert (await api.request("DELETE", f"{ADMIN}{req['id']}/", td)).status_code == 204

    page = (await api.get(AUDIT, td)).json()
    actions = [e["action"] for e in page["results"]]  # newest first
    assert actions[:6] == [
        "request_deleted", "token_issued", "account_linked", "token_issued", "login", "login_failed",
    ]
    by_action = {e["action"]: e for e in reversed(page["results"])}
    deleted = by_action["request_deleted"]
    assert deleted["actor_id"] == boss.id and deleted["target_type"] == "request"
    assert deleted["target_id"] == str(req["id"]) and deleted["channel"] == "rest"
    login = by_action["login"]
    assert login["actor_id"] == boss.id and login["client_address"] == "127.0.0.1"
    failed = [e for e in page["results"] if e["action"] == "login_failed"]
    assert {(e["actor_id"], e["details"]["username"]) for e in failed} == {(anna.id, "anna"), (None, "ghost")}
    linked = by_action["account_linked"]
    assert linked["details"]["telegram_id"] == 777001 and linked["target_id"] == str(anna.id)
    assert linked["channel"] == "cli"
    # the deleted request's history is kept, with its deletion
    assert await RequestHistory.filter(request_id=req["id"], field="deleted").exists()

    # filters
    only = (await api.get(AUDIT + "?action=login_failed", td)).json()
    assert only["count"] == 2
    mine = (await api.get(AUDIT + f"?actor={boss.id}", td)).json()
    assert {e["actor_id"] for e in mine["results"]} == {boss.id}
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await api.get(AUDIT, td, params={"since": future})).json()["count"] == 0
    assert (await api.get(AUDIT, td, params={"until": future})).json()["count"] == page["count"]
    assert (await api.get(AUDIT + "?action=nonsense", td)).status_code == 400
    assert (await api.get(AUDIT + "?since=yesterday", td)).status_code == 400
    # directors only
    assert (await api.get(AUDIT, await token_for(anna))).status_code == 403
    assert (await api.get(AUDIT, await token_for(customer))).status_code == 403


async def test_audit_log_is_paginated(api, make_user, token_for):
    boss = await make_user("director")
    for _ in range(21):
        await AuditEntry.create(action="login", actor_id=boss.id, channel="rest")
    td = await token_for(boss)  # one more: token_issued
    first = (await api.get(AUDIT + "?action=login", td)).json()
    assert first["count"] == 21 and len(first["results"]) == 20 and first["next"]
    assert len((await api.get(AUDIT + "?action=login&page=2", td)).json()["results"]) == 1


async def test_housekeeping_keeps_the_audit_log_for_its_own_retention(settings, make_user):
    from scheduler.jobs import run_housekeeping

    now = datetime.now(UTC)
    customer = await make_user("customer")
    await AuditEntry.all().delete()  # its user_created entry
    live = await svc.create_request(customer, title="live", description="d")
    gone = await svc.create_request(customer, title="gone", description="d")
    old, older = now - timedelta(days=100), now - timedelta(days=400)
    fresh_entry = await AuditEntry.create(action="login", channel="rest")
    month_old = await AuditEntry.create(action="login", channel="rest")
    year_old = await AuditEntry.create(action="login", channel="rest")
    await AuditEntry.filter(id=month_old.id).update(created_at=old)
    await AuditEntry.filter(id=year_old.id).update(created_at=older)
    await RequestHistory.all().update(created_at=older)
    await CustomerRequest.filter(id=gone.id).delete()

    await run_housekeeping(settings, now)  # AUDIT_RETENTION_DAYS defaults to 365
    left = set(await AuditEntry.all().values_list("id", flat=True))
    assert fresh_entry.id in left and month_old.id in left and year_old.id not in left
    # a live request keeps its whole history; a deleted one's goes with the retention
    assert await RequestHistory.filter(request_id=live.id).exists()
    assert not await RequestHistory.filter(request_id=gone.id).exists()

    await run_housekeeping(settings.with_overrides(audit_retention_days=30), now)
    assert set(await AuditEntry.all().values_list("id", flat=True)) == {fresh_entry.id}


def test_audit_retention_setting_is_validated():
    from core.settings import SettingsError, load_settings

    assert load_settings({}, dotenv=False).audit_retention_days == 365
    assert load_settings({"AUDIT_RETENTION_DAYS": "90"}, dotenv=False).audit_retention_days == 90
    with pytest.raises(SettingsError, match="AUDIT_RETENTION_DAYS"):
        load_settings({"AUDIT_RETENTION_DAYS": "forever"}, dotenv=False)
