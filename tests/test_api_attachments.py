"""REST: attachments, streamed upload to MEDIA_ROOT, list, download, limits and isolation."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest

from bootstrap.app import create_app
from db.models import Event, RequestAttachment, RequestMessage
from tests.api_helpers import ADMIN, CUSTOMER, chunked, multipart_parts, new_request
from tests.live import Api, serve


def stored_files(media: Path) -> list[Path]:
    root = media / "request_attachments"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture
async def small_api(settings):
    """A live API with MAX_UPLOAD_MB=1."""
    s = settings.with_overrides(max_upload_mb=1)
    from core import runtime

    runtime.configure(s)
    app = create_app(s)
    async with serve(app) as base:
        client = Api(base)
        try:
            yield client, s
        finally:
            await client.close()


async def test_admin_uploads_file_and_customer_downloads_it(api, make_user, token_for, settings):
    customer, admin = await make_user("customer"), await make_user("admin")
    tc, ta = await token_for(customer), await token_for(admin)
    req = await new_request(api, tc)
    payload = bytes(range(256)) * 1000  # binary, with CRLF and dashes inside
    r = await api.post(
        f"{ADMIN}{req['id']}/attachments/",
        ta,
        files={"file": ("Счёт за май.pdf", payload, "application/pdf")},
    )
    assert r.status_code == 201, r.text
    att = r.json()
    assert att["name"] == "Счёт за май.pdf" and att["size"] == len(payload)
    assert att["content_type"] == "application/pdf" and att["request"] == req["id"]
    assert urlparse(att["file"]).path == f"/api/attachments/{att['id']}/download/"

    # stored under MEDIA_ROOT/request_attachments/<request id>/
    files = stored_files(settings.media_root)
    assert len(files) == 1 and files[0].parent.name == str(req["id"])
    assert files[0].read_bytes() == payload

    # a thread message "Вложение: ..." of type file, visible to the customer
    msgs = (await api.get(f"{CUSTOMER}{req['id']}/messages/", tc)).json()
    assert msgs[-1]["content"] == "Вложение: Счёт за май.pdf" and msgs[-1]["message_type"] == "file"
    assert att["message"] == msgs[-1]["id"]
    assert (await api.get(f"{CUSTOMER}{req['id']}/", tc)).json()["messages_count"] == len(msgs)

    # announced like any new message, with the file attached
    event = await Event.filter(type="new_message").order_by("-id").first()
    assert event.payload["id"] == att["message"] and event.payload["message_type"] == "file"
    assert [a["id"] for a in event.payload["attachments"]] == [att["id"]]

    r = await api.get(urlparse(att["file"]).path, tc)
    assert r.status_code == 200 and r.content == payload
    assert r.headers["content-type"] == "application/pdf"
    cd = r.headers["content-disposition"]
    assert cd.startswith("attachment;") and "filename*=UTF-8''%D0%A1%D1%87%D1%91%D1%82" in cd
    assert r.headers["x-content-type-options"] == "nosniff"

    lists = [
        (await api.get(f"{ADMIN}{req['id']}/attachments/", ta)).json(),
        (await api.get(f"{CUSTOMER}{req['id']}/attachments/", tc)).json(),
    ]
    assert all([a["id"] for a in rows] == [att["id"]] for rows in lists)
    # on REST the token is taken only from the header (a URL ends up in logs and history)
    r = await api.get(urlparse(att["file"]).path + f"?token={tc}")
    assert r.status_code == 401


async def test_customer_uploads_image_to_own_request(api, make_user, token_for):
    customer = await make_user("customer")
    tc = await token_for(customer)
    req = await new_request(api, tc)
    r = await api.post(
        f"{CUSTOMER}{req['id']}/attachments/",
        tc,
        files={"file": ("screen.png", b"\x89PNG\r\n\x1a\n" + b"0" * 100, "image/png")},
        data={"caption": "Вот скриншот", "is_internal": "true"},
    )
    assert r.status_code == 201, r.text
    msg = await RequestMessage.get(id=r.json()["message"])
    assert msg.message_type == "image" and msg.content == "Вот скриншот"
    assert msg.sender_type == "customer" and msg.is_internal is False

    # a customer cannot slip a file into a message already sent (staff would never be told):
    # each file is a new message
    count = await RequestMessage.filter(request_id=req["id"]).count()
    r = await api.post(
        f"{CUSTOMER}{req['id']}/attachments/",
        tc,
        files={"file": ("second.txt", b"2", "text/plain")},
        data={"message": str(msg.id)},
    )
    assert r.status_code == 400 and "новым сообщением" in r.json()["message"][0]
    assert await RequestMessage.filter(request_id=req["id"]).count() == count
    assert await RequestAttachment.filter(request_id=req["id"]).count() == 1


async def test_customer_cannot_reach_another_customers_files(api, make_user, token_for):
    alice, bob, admin = (
        await make_user("customer"),
        await make_user("customer"),
        await make_user("admin"),
    )
    ta, tb, tadm = await token_for(alice), await token_for(bob), await token_for(admin)
    req = await new_request(api, ta)
    r = await api.post(
        f"{CUSTOMER}{req['id']}/attachments/", ta, files={"file": ("a.txt", b"alice", "text/plain")}
    )
    path = urlparse(r.json()["file"]).path
    assert (await api.get(path, tb)).status_code == 404
    assert (await api.get(path)).status_code == 401
    assert (await api.get(f"{CUSTOMER}{req['id']}/attachments/", tb)).status_code == 404
    assert (await api.get(f"{ADMIN}{req['id']}/attachments/", tb)).status_code == 403
    assert (
        await api.post(
            f"{ADMIN}{req['id']}/attachments/", tb, files={"file": ("b.txt", b"b", "text/plain")}
        )
    ).status_code == 403
    # bob's own message id cannot smuggle a file into alice's request
    own = await new_request(api, tb)
    m = (await api.post(f"{CUSTOMER}{own['id']}/messages/", tb, json={"content": "x"})).json()
    r = await api.post(
        f"{CUSTOMER}{req['id']}/attachments/",
        tb,
        files={"file": ("b.txt", b"b", "text/plain")},
        data={"message": str(m["id"])},
    )
    assert r.status_code == 404

    # internal files are for staff only
    await api.post(f"{ADMIN}{req['id']}/take/", tadm)
    r = await api.post(
        f"{ADMIN}{req['id']}/attachments/",
        tadm,
        files={"file": ("note.txt", b"internal", "text/plain")},
        data={"is_internal": "true"},
    )
    assert r.status_code == 201
    internal = r.json()
    assert (await api.get(urlparse(internal["file"]).path, ta)).status_code == 404
    names = [a["name"] for a in (await api.get(f"{CUSTOMER}{req['id']}/attachments/", ta)).json()]
    assert names == ["a.txt"]
    assert len((await api.get(f"{ADMIN}{req['id']}/attachments/", tadm)).json()) == 2


async def test_file_names_cannot_escape_media_root(api, make_user, token_for, settings):
    customer = await make_user("customer")
    tc = await token_for(customer)
    req = await new_request(api, tc)
    for evil in ("../../../etc/passwd", "..\\..\\win.ini", "/abs/path.txt", "..", "a\x00b.txt"):
        r = await api.post(
            f"{CUSTOMER}{req['id']}/attachments/", tc, files={"file": (evil, b"data", "text/plain")}
        )
        assert r.status_code == 201, (evil, r.text)
    root = (settings.media_root / "request_attachments" / str(req["id"])).resolve()
    files = stored_files(settings.media_root)
    assert len(files) == 5 and all(f.resolve().parent == root for f in files)
    assert not any(name.startswith(".") for name in (f.name.split("_", 1)[1] for f in files))
    # a database row pointing outside the attachments folder is never served
    att = await RequestAttachment.filter(request_id=req["id"]).first()
    await RequestAttachment.filter(id=att.id).update(file="../../../etc/passwd")
    assert (await api.get(f"/api/attachments/{att.id}/download/", tc)).status_code == 404
    assert (await api.get("/api/attachments/999999/download/", tc)).status_code == 404


async def test_oversized_upload_is_refused_with_413(small_api, make_user, token_for):
    api, s = small_api
    customer = await make_user("customer")
    tc = await token_for(customer)
    req = await new_request(api, tc)
    url = f"{CUSTOMER}{req['id']}/attachments/"
    limit = s.max_upload_bytes

    # Content-Length says too much: refused before the body is read
    r = await api.post(
        url,
        tc,
        files={"file": ("big.bin", b"x" * (limit + 100 * 1024), "application/octet-stream")},
    )
    assert r.status_code == 413 and "detail" in r.json()

    # No Content-Length (chunked): refused as soon as the file passes the limit
    ctype, head, tail = multipart_parts({}, "big.bin")
    r = await api.post(
        url, tc, content=chunked(head, limit + 1, tail), headers={"Content-Type": ctype}
    )
    assert r.status_code == 413 and "detail" in r.json()

    # Exactly at the limit is fine
    r = await api.post(url, tc, content=chunked(head, limit, tail), headers={"Content-Type": ctype})
    assert r.status_code == 201, r.text
    assert r.json()["size"] == limit
    # nothing of the refused uploads is left behind
    assert len(stored_files(s.media_root)) == 1
    assert await RequestAttachment.filter(request_id=req["id"]).count() == 1


async def test_bad_uploads_are_4xx(api, make_user, token_for, settings):
    admin, customer = await make_user("admin"), await make_user("customer")
    ta, tc = await token_for(admin), await token_for(customer)
    req = await new_request(api, tc)
    url = f"{ADMIN}{req['id']}/attachments/"
    r = await api.post(url, ta, json={"file": "abc"})
    assert r.status_code == 415 and "detail" in r.json()
    r = await api.post(url, ta, files={"other": ("a.txt", b"x", "text/plain")})
    assert r.status_code == 400 and "file" in r.json()
    r = await api.post(
        url, ta, data={"message": "1"}, files={"file": ("empty.txt", b"", "text/plain")}
    )
    assert r.status_code == 400 and "file" in r.json()
    r = await api.post(
        url, ta, data={"message": "abc"}, files={"file": ("a.txt", b"x", "text/plain")}
    )
    assert r.status_code == 400 and "message" in r.json()
    r = await api.post(
        url, ta, data={"message": "999999"}, files={"file": ("a.txt", b"x", "text/plain")}
    )
    assert r.status_code == 400 and "message" in r.json()
    r = await api.post(
        url, ta, data={"is_internal": "maybe"}, files={"file": ("a.txt", b"x", "text/plain")}
    )
    assert r.status_code == 400 and "is_internal" in r.json()
    ctype, head, _ = multipart_parts({}, "cut.txt")
    r = await api.post(
        url, ta, content=head + b"no closing boundary", headers={"Content-Type": ctype}
    )
    assert r.status_code == 400
    r = await api.post(url, ta, content=b"garbage", headers={"Content-Type": "multipart/form-data"})
    assert r.status_code == 415
    r = await api.post(
        url, ta, content=b"garbage", headers={"Content-Type": "multipart/form-data; boundary=zzz"}
    )
    assert r.status_code == 400
    r = await api.post(
        f"{ADMIN}999999/attachments/", ta, files={"file": ("a.txt", b"x", "text/plain")}
    )
    assert r.status_code == 404
    assert (await api.get(f"{ADMIN}999999/attachments/", ta)).status_code == 404
    assert stored_files(settings.media_root) == []


async def test_admin_upload_follows_can_manage_request(api, make_user, token_for):
    customer, a1, a2 = (
        await make_user("customer"),
        await make_user("admin"),
        await make_user("admin"),
    )
    tc, t1, t2 = await token_for(customer), await token_for(a1), await token_for(a2)
    req = await new_request(api, tc)
    await api.post(f"{ADMIN}{req['id']}/take/", t1)
    files = {"file": ("a.txt", b"x", "text/plain")}
    assert (await api.post(f"{ADMIN}{req['id']}/attachments/", t2, files=files)).status_code == 403
    r = await api.post(
        f"{ADMIN}{req['id']}/attachments/", t2, files=files, data={"is_internal": "true"}
    )
    assert r.status_code == 201
    assert (await api.post(f"{ADMIN}{req['id']}/attachments/", t1, files=files)).status_code == 201
