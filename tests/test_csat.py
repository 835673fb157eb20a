"""Customer satisfaction over REST and the web page; its figures in stats/ and the digest."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx

from core import requests as svc
from db.models import CustomerRequest, Event, RequestHistory
from tests.api_helpers import ADMIN, CUSTOMER, new_request


async def _completed(api, make_user, token_for, **customer_fields):
    customer = await make_user("customer", **customer_fields)
    admin = await make_user("admin")
    tc, ta = await token_for(customer), await token_for(admin)
    req = await new_request(api, tc)
    assert (await api.post(f"{ADMIN}{req['id']}/take/", ta)).status_code == 200
    assert (await api.post(f"{ADMIN}{req['id']}/complete/", ta)).status_code == 200
    return customer, admin, tc, ta, req["id"]


async def test_customer_rates_a_completed_request_and_may_change_it_until_it_closes(
    api, make_user, token_for
):
    customer, admin, tc, ta, rid = await _completed(api, make_user, token_for)
    fresh = (await api.get(f"{CUSTOMER}{rid}/", tc)).json()
    assert fresh["rating"] is None and fresh["rating_comment"] == ""
    r = await api.post(f"{CUSTOMER}{rid}/rating/", tc, json={"rating": 2, "comment": "slow"})
    assert r.status_code == 200, r.text
    assert r.json()["rating"] == 2 and r.json()["rating_comment"] == "slow"
    # changed: the comment stays when not sent
    r = await api.post(f"{CUSTOMER}{rid}/rating/", tc, json={"rating": 5})
    assert r.json()["rating"] == 5 and r.json()["rating_comment"] == "slow"
    staff_view = (await api.get(f"{ADMIN}{rid}/", ta)).json()
    assert staff_view["rating"] == 5 and staff_view["rating_comment"] == "slow"
    # the event for integrations, and the history
    rated = await Event.filter(type="request.rated").order_by("id")
    assert [e.payload["rating"] for e in rated] == [2, 5]
    assert rated[-1].payload["id"] == rid and rated[-1].payload["rating_comment"] == "slow"
    changes = await RequestHistory.filter(request_id=rid, field__in=["rating", "rating_comment"]).order_by("id")
    assert [(h.field, h.old_value, h.new_value) for h in changes] == [
        ("rating", None, "2"), ("rating_comment", '""', '"slow"'), ("rating", "2", "5"),
    ]
    assert {h.actor_id for h in changes} == {customer.id}
    # the same rating again records nothing
    await api.post(f"{CUSTOMER}{rid}/rating/", tc, json={"rating": 5})
    assert await Event.filter(type="request.rated").count() == 2
    # closed: the rating stands as it is
    boss = await make_user("director")
    assert (await api.post(f"{ADMIN}{rid}/close/", await token_for(boss))).status_code == 200
    r = await api.post(f"{CUSTOMER}{rid}/rating/", tc, json={"rating": 1})
    assert r.status_code == 400 and "error" in r.json()
    assert (await CustomerRequest.get(id=rid)).rating == 5


async def test_only_the_customer_rates_only_a_completed_request_with_1_to_5(api, make_user, token_for):
    customer = await make_user("customer")
    admin = await make_user("admin")
    tc, ta = await token_for(customer), await token_for(admin)
    req = await new_request(api, tc)
    rid = req["id"]
    r = await api.post(f"{CUSTOMER}{rid}/rating/", tc, json={"rating": 4})
    assert r.status_code == 400 and "error" in r.json()  # still open
    await api.post(f"{ADMIN}{rid}/take/", ta)
    await api.post(f"{ADMIN}{rid}/complete/", ta)
    for bad in (0, 6, "five", True, 4.5, None):
        r = await api.post(f"{CUSTOMER}{rid}/rating/", tc, json={"rating": bad})
        assert r.status_code == 400 and "rating" in r.json(), bad
    r = await api.post(f"{CUSTOMER}{rid}/rating/", tc, json={"rating": 3, "comment": "x" * 10001})
    assert r.status_code == 400 and "comment" in r.json()
    other = await make_user("customer")
    assert (await api.post(f"{CUSTOMER}{rid}/rating/", await token_for(other), json={"rating": 1})).status_code == 404
    assert (await api.post(f"{CUSTOMER}{rid}/rating/", ta, json={"rating": 1})).status_code == 404
    assert (await api.post(f"{CUSTOMER}{rid}/rating/", json={"rating": 1})).status_code == 401
    assert (await CustomerRequest.get(id=rid)).rating is None


async def test_stats_and_digest_show_the_average_and_the_number_of_ratings(
    api, make_user, token_for, settings
):
    from core.digest import build_digest_text

    admin = await make_user("admin")
    ta = await token_for(admin)
    empty = (await api.get(f"{ADMIN}stats/", ta)).json()
    assert empty["csat_average"] is None and empty["csat_responses"] == 0
    for score in (5, 4, 4):
        customer = await make_user("customer")
        req = await svc.create_request(customer, title="t", description="d")
        await svc.take_request(admin, req.id)
        await svc.complete_request(admin, req.id)
        from core.csat import rate_request

        await rate_request(customer, req.id, score)
    stats = (await api.get(f"{ADMIN}stats/", ta)).json()
    assert stats["csat_average"] == 4.33 and stats["csat_responses"] == 3
    assert stats["total_requests"] == 3  # the seed's figures are still there
    text = await build_digest_text("ru", datetime.now(UTC))
    assert "Оценка клиентов: <b>4.33</b> из 5 (3 оценки)" in text  # CLDR plural (core.i18n)
    text = await build_digest_text("en", datetime.now(UTC))
    assert "Customer satisfaction: <b>4.33</b> of 5 (3 ratings)" in text


# --- the web page -------------------------------------------------------------------------


async def _web_request(client: httpx.AsyncClient) -> tuple[str, int]:
    r = await client.post("/api/public/requests/", data={
        "name": "Anna Petrova", "email": "anna@example.com", "title": "Чек", "description": "нет чека",
    }, headers={"Accept": "application/json"})
    assert r.status_code == 201
    return r.json()["access_key"], r.json()["request"]["id"]


def _section_hidden(page: str) -> bool:
    tag = re.search(r'<section class="rating card"[^>]*>', page).group(0)
    return "hidden" in tag


async def test_web_page_asks_for_a_rating_once_completed_and_takes_it_without_javascript(
    settings, make_user
):
    from bootstrap.app import create_app
    from tests.live import serve

    admin = await make_user("admin")
    async with serve(create_app(settings)) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            key, rid = await _web_request(client)
            page = (await client.get(f"/r/{key}")).text
            assert _section_hidden(page)  # not before it is completed
            assert '<script src="/static/web/rating.js" defer></script>' in page
            await svc.take_request(admin, rid)
            await svc.complete_request(admin, rid)
            page = (await client.get(f"/r/{key}")).text
            assert not _section_hidden(page)
            assert page.count('name="rating"') == 5 and 'aria-pressed="true"' not in page
            state = (await client.get(f"/api/public/requests/{key}/")).json()["request"]
            assert state["can_rate"] is True and state["rating"] is None
            # a plain form post: the pressed button's value and the comment
            r = await client.post(f"/api/public/requests/{key}/rating/",
                                  data={"rating": "4", "comment": "Быстро, спасибо"},
                                  headers={"Accept": "text/html"})
            assert r.status_code == 303 and r.headers["location"] == f"/r/{key}?rated=1"
            page = (await client.get(r.headers["location"])).text
            assert 'value="4" class="rating-button" aria-pressed="true"' in page
            assert "Быстро, спасибо" in page and "Спасибо за оценку!" in page
            # the page's script: JSON back
            r = await client.post(f"/api/public/requests/{key}/rating/?lang=en", data={"rating": "5"},
                                  headers={"Accept": "application/json"})
            assert r.status_code == 200 and r.json()["request"]["rating"] == 5
            assert r.json()["request"]["rating_comment"] == "Быстро, спасибо"
            r = await client.post(f"/api/public/requests/{key}/rating/?lang=en", data={"rating": "9"},
                                  headers={"Accept": "application/json"})
            assert r.status_code == 400 and r.json()["rating"] == ["Choose a rating from 1 to 5."]
            r = await client.post("/api/public/requests/" + "x" * 20 + "/rating/", data={"rating": "5"},
                                  headers={"Accept": "application/json"})
            assert r.status_code == 404
            boss = await make_user("director")
            await svc.close_request(boss, rid)
            page = (await client.get(f"/r/{key}")).text
            assert _section_hidden(page)
            r = await client.post(f"/api/public/requests/{key}/rating/", data={"rating": "1"},
                                  headers={"Accept": "application/json"})
            assert r.status_code == 400
            assert (await client.get("/static/web/rating.js")).status_code == 200
            row = await RequestHistory.filter(request_id=rid, field="rating").order_by("-id").first()
            assert row.channel == "web" and row.new_value == "5"
            assert (await CustomerRequest.get(id=rid)).rating == 5
