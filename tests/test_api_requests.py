"""REST: /api/admin/customer-requests/ as an integrator meets it."""

from __future__ import annotations


async def test_admin_creates_lists_takes_completes(api, make_user, token_for):
    admin = await make_user("admin")
    customer = await make_user("customer")
    tok = await token_for(admin)
    r = await api.post(
        "/api/admin/customer-requests/",
        tok,
        json={"title": "Broken", "description": "desc", "customer_id": customer.id, "priority": "high"},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["customer"]["id"] == customer.id and created["status"] == "open"
    r = await api.get("/api/admin/customer-requests/?status=open", tok)
    page = r.json()
    assert page["count"] == 1 and page["results"][0]["id"] == created["id"]
    r = await api.post(f"/api/admin/customer-requests/{created['id']}/take/", tok)
    assert r.status_code == 200 and r.json()["status"] == "in_progress"
    r = await api.post(f"/api/admin/customer-requests/{created['id']}/take/", tok)
    assert r.status_code == 400 and "error" in r.json()
    r = await api.post(f"/api/admin/customer-requests/{created['id']}/complete/", tok)
    assert r.json()["status"] == "completed"


async def test_customer_gets_403_on_admin_routes(api, make_user, token_for):
    customer = await make_user("customer")
    r = await api.get("/api/admin/customer-requests/", await token_for(customer))
    assert r.status_code == 403 and "detail" in r.json()


async def test_anonymous_gets_401(api):
    r = await api.get("/api/admin/customer-requests/")
    assert r.status_code == 401


async def test_token_login(api, make_user):
    await make_user("admin", username="boss", password="s3cret-pass")
    r = await api.post("/api/auth/token/", json={"username": "boss", "password": "s3cret-pass"})
    assert r.status_code == 200 and len(r.json()["token"]) == 40
    r = await api.post("/api/auth/token/", json={"username": "boss", "password": "nope"})
    assert r.status_code == 400 and "non_field_errors" in r.json()


async def test_bad_input_is_4xx(api, make_user, token_for):
    tok = await token_for(await make_user("admin"))
    url = "/api/admin/customer-requests/"
    assert (await api.post(url, tok, content=b"{not json", headers={"Content-Type": "application/json"})).status_code == 400
    r = await api.post(url, tok, json={"title": "x" * 201, "description": "d"})
    assert r.status_code == 400 and "title" in r.json()
    r = await api.post(url, tok, json={"title": "t", "description": "d", "priority": "asap"})
    assert r.status_code == 400 and "priority" in r.json()
    r = await api.post(url, tok, json={"title": 5, "description": "d"})
    assert r.status_code == 400
    r = await api.post(url, tok, json=[1, 2])
    assert r.status_code == 400
    assert (await api.get(url + "999999/", tok)).status_code == 404
    assert (await api.get(url + "?status=bogus", tok)).status_code == 400


async def test_stats_over_rest_are_the_desks_figures(api, make_user, token_for):
    """GET stats/ (on PostgreSQL read in the token's own statement) gives the seed's figures
    and the ratings: one request of each kind, one completed today and rated."""
    from core import requests as svc
    from core.csat import rate_request

    admin = await make_user("admin")
    customer = await make_user("customer")
    reqs = [await svc.create_request(customer, title=f"r{i}", description="d") for i in range(5)]
    await svc.take_request(admin, reqs[0].id)
    for r in reqs[1:3]:
        await svc.take_request(admin, r.id)
        await svc.complete_request(admin, r.id)
    await rate_request(customer, reqs[1].id, 5)
    await rate_request(customer, reqs[2].id, 2)
    r = await api.get("/api/admin/customer-requests/stats/", await token_for(admin))
    assert r.status_code == 200
    assert r.json() == {
        "total_requests": 5, "open_requests": 2, "in_progress_requests": 1,
        "completed_today": 2, "completion_rate": 40.0,
        "csat_average": 3.5, "csat_responses": 2,
    }
    assert (await api.get("/api/admin/customer-requests/stats/", await token_for(customer))).status_code == 403
    assert (await api.get("/api/admin/customer-requests/stats/")).status_code == 401
