"""The one writer of a request's thread.

`append` is the only code that adds a message (text, system, or with files) to a
request's thread: in the caller's transaction it creates the message row, its attachment
rows, bumps the request's last_message_at and message counts, remembers the first staff
reply (core.staff_stats) and records the `new_message` event. Every channel reaches it
through a use case: `post_message` (REST, console, bot, mail, canned replies),
core.attachments (uploads, bot media, web-form files), core.lifecycle (the system message
of every status move) and `add_internal_system_note` (the relay's and sender's notes).

`add_file` is the one other way in: a file joining an existing message.
`check_can_post` is the one rule of who may add to a thread (post_message's and every
upload's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tortoise import connections
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from core import events, i18n, pg_writes, staff_stats
from core.bans import require_not_banned
from core.clock import now
from core.errors import Conflict, NotFound, ValidationFailed
from core.limits import check_text
from core.limits import current as current_limits
from core.permissions import Subject, is_staff, require_manage_request
from core.serializers import message_data
from core.texts import t
from db.models import (
    CustomerRequest,
    MessageType,
    RequestAttachment,
    RequestMessage,
    SenderType,
    Source,
    Status,
    User,
)

if TYPE_CHECKING:
    from core.attachments import StoredFile

POSTABLE_TYPES = (MessageType.text, MessageType.image, MessageType.file)


def check_can_post(actor: User, req: Subject, *, is_internal: bool = False) -> bool:
    """Raise unless `actor` may add to the thread of `req`; returns whether what it adds
    is internal. Staff: internal notes on any request, replies under CanManageRequest.
    A customer: own request only (NotFound), never internal, not while banned, not once
    the request is closed."""
    if is_staff(actor):
        if not is_internal:
            require_manage_request(actor, req)
        return bool(is_internal)
    if req.customer_id != actor.id:
        raise NotFound(t("err_not_found", actor.language))
    require_not_banned(actor)
    if req.status == Status.closed:
        raise Conflict(t("err_closed", actor.language))
    return False


async def append(
    conn: Any,
    req: Subject,
    author: User,
    content: str,
    *,
    message_type: str = MessageType.text,
    is_internal: bool = False,
    source: Source = Source.api,
    files: Sequence[StoredFile] = (),
) -> tuple[RequestMessage, list[RequestAttachment]]:
    """Add one message (with `files`, already in storage and checked) to the thread of
    `req` through the caller's `conn` (its transaction when it has one open; on PostgreSQL
    without files the writes are one statement, atomic on their own). No permission check.
    `req` may be just its access columns on PostgreSQL (only its id is read there);
    elsewhere the first-reply check reads the request's first_response_at.
    Event: new_message (the message's JSON, plus `attachments` when there are files).
    A system message keeps `content` in Russian and its catalog key and params in
    `content_i18n` (core.i18n), so each reader sees it in their own language."""
    system = message_type == MessageType.system
    values: dict[str, Any] = {
        "request_id": req.id,
        "sender_id": author.id,
        "sender_type": SenderType.admin if is_staff(author) else SenderType.customer,
        "content": i18n.render(content, i18n.DEFAULT_LANGUAGE) if system else content,
        "content_i18n": i18n.to_json(content) if system else None,
        "message_type": message_type,
        "is_read": False,
        "is_internal": bool(is_internal),
        "created_at": now(),
        "source": source,
        "is_deleted": False,
    }
    first = staff_stats.is_first_response(values["sender_type"], values["is_internal"], message_type)
    if conn.capabilities.dialect == "postgres" and not files:
        # the row, the counters, the first reply and the event: one statement (atomic on
        # its own, so post_message needs no transaction; core/pg_writes.py)
        draft = pg_writes.draft(RequestMessage, values)
        msg = await pg_writes.add_message(
            conn, values, first_response=first,
            event=(events.NEW_MESSAGE, events.ADMIN_TOPIC, _event_data(draft, author, [])),
        )
        atts: list[RequestAttachment] = []
    else:
        if conn.capabilities.dialect == "postgres":
            msg = await pg_writes.add_message(conn, values, first_response=first, event=None)
        else:
            msg = await RequestMessage.create(**values, using_db=conn)
            counts: dict[str, Any] = {
                "last_message_at": msg.created_at, "messages_count": F("messages_count") + 1,
            }
            if not msg.is_internal:
                counts["public_messages_count"] = F("public_messages_count") + 1
            await CustomerRequest.filter(id=req.id).using_db(conn).update(**counts)
            await staff_stats.note_first_response(conn, req, msg)
        atts = [await _attachment(req, msg, author, f, conn) for f in files]
        await events.record_event(events.NEW_MESSAGE, _event_data(msg, author, atts), using_db=conn)
    msg.sender = author
    return msg, atts


def _event_data(msg: RequestMessage, author: User, atts: list[RequestAttachment]) -> dict[str, Any]:
    """The new_message event's payload: the message's JSON, plus `content_i18n` for a
    system message (the admin socket renders it per reader; webhooks drop it) and
    `attachments` when it has files."""
    data = message_data(msg, author)
    if msg.content_i18n:
        data[i18n.EVENT_FIELD] = msg.content_i18n
    if atts:
        from core.attachments import serialize

        data["attachments"] = [serialize(a) for a in atts]
    return data


async def add_file(
    req: CustomerRequest, message: RequestMessage, author: User, file: StoredFile
) -> RequestAttachment:
    """A file (in storage, checked) joining an existing message of the thread of `req`:
    no new message, so no counters and no event (the REST upload's `message` field)."""
    return await _attachment(req, message, author, file)


async def _attachment(
    req: CustomerRequest, message: RequestMessage, author: User, file: StoredFile,
    conn: Any = None,
) -> RequestAttachment:
    """The attachment row of `file` on `message` (the one place it is written)."""
    return await RequestAttachment.create(
        request_id=req.id,
        message_id=message.id,
        name=file.name,
        file=file.stored_path,
        size=file.size,
        content_type=file.content_type,
        uploaded_by_id=author.id,
        using_db=conn,
    )


async def post_message(
    actor: User,
    request_id: int,
    content: str,
    *,
    is_internal: bool = False,
    message_type: str = MessageType.text,
    source: Source = Source.api,
    loaded: Subject | None = None,
) -> RequestMessage:
    """Add a message to a request's thread, atomically (on PostgreSQL one statement,
    see `append`; on SQLite one transaction). `loaded`: the
    request (or just its access columns) when the caller read it already (the staff REST
    route, in its token's statement: core.queries.access_from_rider).

    Staff: CanManageRequest; sender_type admin; may mark it internal (never shown to the
    customer). Customer: own request only, never internal, not once it is closed, not
    while banned (PermissionDenied, core.bans).
    Event: new_message (with `is_internal`, so channels can keep notes private).
    """
    from core.queries import get_request_only

    # the request's own columns are all the checks and `append` read (no users)
    req = loaded if loaded is not None else await get_request_only(actor, request_id)
    is_internal = check_can_post(actor, req, is_internal=is_internal)
    check_message(actor, content, message_type)
    conn = connections.get("default")
    if conn.capabilities.dialect == "postgres":
        # one statement, atomic on its own (see append): no BEGIN and COMMIT round trips
        msg, _ = await append(
            conn, req, actor, content, message_type=message_type, is_internal=is_internal,
            source=source,
        )
    else:
        async with in_transaction() as conn:
            msg, _ = await append(
                conn, req, actor, content, message_type=message_type,
                is_internal=is_internal, source=source,
            )
    events.committed()
    return msg


def check_message(actor: User, content: str, message_type: str = MessageType.text) -> None:
    """ValidationFailed unless `content` is an acceptable message text of a postable type."""
    errors: dict[str, list[str]] = {}
    check_text(errors, "content", content, current_limits().content, actor.language)
    if message_type not in POSTABLE_TYPES:
        errors["message_type"] = [t("err_invalid_choice", value=message_type)]
    if errors:
        raise ValidationFailed(errors)


async def add_system_message(
    conn: Any, req: CustomerRequest, author: User, content: str, *, is_internal: bool = False,
) -> RequestMessage:
    """A system message (a move, a note of the desk) in the caller's transaction."""
    msg, _ = await append(
        conn, req, author, content, message_type=MessageType.system, is_internal=is_internal,
    )
    return msg


async def add_internal_system_note(request_id: int, content: str) -> RequestMessage | None:
    """A system message only staff see (is_internal), for what the desk itself noticed
    (a Telegram delivery that failed, an event set aside). Written on behalf of the
    assignee, else the customer, like the auto-close message. None if the request is gone.
    Event: new_message (system, internal: no channel relays it to the customer)."""
    req = await CustomerRequest.filter(id=request_id).select_related("assigned_admin", "customer").first()
    if req is None:
        return None
    author = req.assigned_admin or req.customer
    async with in_transaction() as conn:
        msg = await add_system_message(conn, req, author, content, is_internal=True)
    events.committed()
    return msg
