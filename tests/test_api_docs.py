"""REST: the OpenAPI document describes every route, and the docs page works offline."""

from __future__ import annotations

import json
import re

from bootstrap.app import create_app
from core.settings import Settings


def routes_of_app() -> set[tuple[str, str]]:
    app = create_app(Settings(database_url="sqlite://:memory:"))
    app.router.finalize()
    found = set()
    for route in app.router.routes:
        path = "/" + route.path.strip("/")
        if not path.startswith("/api/") or path.startswith(("/api/docs", "/api/schema")):
            continue
        path = re.sub(r"<(\w+)(:[^>]+)?>", r"{\1}", path) + "/"
        for method in route.methods:
            if method not in ("HEAD", "OPTIONS"):
                found.add((method.lower(), path))
    return found


def test_schema_describes_every_api_route_and_nothing_else():
    from api.routes.docs import openapi_document

    doc = openapi_document()
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops if p.startswith("/api/")}
    served = routes_of_app()
    assert served - documented == set(), "routes missing from the OpenAPI document"
    ours = (
        "/api/admin/customer-requests/",
        "/api/admin/chats/",
        "/api/admin/internal-communications/",
        "/api/customer/",
        "/api/attachments/",
        "/api/auth/",
    )
    assert {(m, p) for m, p in documented - served if p.startswith(ours)} == set(), (
        "documented operations that do not exist"
    )

    # every $ref resolves
    text = json.dumps(doc)
    for ref in set(re.findall(r'"\$ref": "#/components/schemas/(\w+)"', text)):
        assert ref in doc["components"]["schemas"], ref
    assert doc["openapi"].startswith("3.")


async def test_schema_and_docs_are_served_offline(api):
    r = await api.get("/api/schema/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    schema = r.json()
    assert "/api/admin/customer-requests/{request_id}/take/" in schema["paths"]
    assert (await api.get("/openapi.json")).json() == schema

    r = await api.get("/api/docs/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    # self-contained: no external scripts, styles or fonts
    assert not re.search(r'<(script|link)[^>]+(src|href)=["\']https?://', page)
    assert "cdn" not in page.lower()
    assert 'fetch("/api/schema/")' in page
    r = await api.get("/docs", follow_redirects=False)
    assert r.status_code in (301, 302) and r.headers["location"] == "/api/docs/"
