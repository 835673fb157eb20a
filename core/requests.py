"""Request use cases: create, update, take, complete, close, reopen, reassign, messages.

Reads (get, list, thread, stats) live in core.queries and are re-exported here.

Every write is one transaction that also records its events (see core.events); every
rule comes from core.permissions. Channels (REST, bot, scheduler, web form) call these.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from core import audit, events, history, runtime, staff_stats
from core.bans import require_not_banned
from core.errors import Conflict, PermissionDenied, ValidationFailed
from core.limits import check_tags, check_text
from core.limits import current as current_limits
from core.permissions import (
    is_director,
    is_staff,
    require_director,
    require_manage_request,
)
from core.queries import (  # noqa: F401  (the read side, re-exported for callers)
    PAGE_SIZE,
    RequestFilters,
    conditions,
    filtered,
    get_request,
    list_messages,
    list_requests,
    stats,
)
from core.queries import load_request as _load
from core.security import new_access_key
from core.serializers import display_name, message_data, request_data
from core.texts import STATUS_LABELS, lang_of, t
from db.models import (
    Category,
    CustomerRequest,
    MessageType,
    Priority,
    RequestMessage,
    Role,
    SenderType,
    Source,
    Status,
    User,
)


def now() -> datetime:
    return datetime.now(UTC)


def build_search_text(title: str, description: str, customer: User) -> str:
    return " ".join(
        [title, description, customer.first_name, customer.last_name, customer.email]
    ).lower()


async def create_request(
    actor: User,
    *,
    title: str,
    description: str,
    priority: str = Priority.medium,
    category: str = Category.general,
    customer_id: int | None = None,
    tags: list[str] | None = None,
    estimated_resolution_time: datetime | None = None,
    source: Source = Source.api,
    with_access_key: bool = False,
) -> CustomerRequest:
    """Create a request (status open). Staff may create on behalf of `customer_id`.
    A banned actor is refused (PermissionDenied, core.bans); staff may still open a
    request on a banned customer's behalf.

    One transaction: the request and a `new_request` event.
    """
    errors: dict[str, list[str]] = {}
    limits = current_limits()
    lang = actor.language
    check_text(errors, "title", title, limits.title, lang)
    check_text(errors, "description", description, limits.content, lang)
    tags = check_tags(errors, tags, lang, limits)
    if priority not in Priority.__members__:
        errors["priority"] = [f"Значения {priority} нет среди допустимых вариантов."]
    if category not in Category.__members__:
        errors["category"] = [f"Значения {category} нет среди допустимых вариантов."]
    require_not_banned(actor)
    customer = actor
    if customer_id is not None and customer_id != actor.id:
        if not is_staff(actor):
            raise PermissionDenied(t("err_no_permission", actor.language))
        found = await User.filter(id=customer_id).first()
        if found is None:
            errors["customer_id"] = [f'Недопустимый первичный ключ "{customer_id}" - объект не существует.']
        else:
            customer = found
    if errors:
        raise ValidationFailed(errors)
    ts = now()
    async with in_transaction() as conn:
        req = await CustomerRequest.create(
            title=title.strip(),
            description=description,
            priority=priority,
            category=category,
            customer=customer,
            tags=list(tags or []),
            estimated_resolution_time=estimated_resolution_time,
            source=source,
            status_changed_at=ts,
            access_key=new_access_key() if with_access_key else None,
            search_text=build_search_text(title, description, customer),
            using_db=conn,
        )
        req.customer = customer
        req.assigned_admin = None
        await history.record_created(conn, req, actor)
        await events.record_event(events.NEW_REQUEST, request_data(req), using_db=conn)
    events.committed()
    return req


UPDATABLE = {"title", "description", "priority", "category", "estimated_resolution_time", "tags", "status"}


async def update_request(actor: User, request_id: int, changes: dict[str, Any]) -> CustomerRequest:
    """PUT/PATCH. Staff only, CanManageRequest. `status` may only move along the allowed
    transitions (a director may set any status; others use take/complete)."""
    req = await get_request(actor, request_id)
    if not is_staff(actor):
        raise PermissionDenied(t("err_no_permission", actor.language))
    require_manage_request(actor, req)
    errors: dict[str, list[str]] = {}
    limits = current_limits()
    lang = actor.language
    if "title" in changes:
        check_text(errors, "title", changes["title"], limits.title, lang)
    if "description" in changes:
        check_text(errors, "description", changes["description"], limits.content, lang)
    if "tags" in changes:
        changes = {**changes, "tags": check_tags(errors, changes["tags"], lang, limits)}
    if "priority" in changes and changes["priority"] not in Priority.__members__:
        errors["priority"] = [f"Значения {changes['priority']} нет среди допустимых вариантов."]
    if "category" in changes and changes["category"] not in Category.__members__:
        errors["category"] = [f"Значения {changes['category']} нет среди допустимых вариантов."]
    new_status = changes.get("status")
    if new_status is not None and new_status != req.status:
        if new_status not in Status.__members__:
            errors["status"] = [f"Значения {new_status} нет среди допустимых вариантов."]
        elif not is_director(actor):
            errors["status"] = [t("err_director_only", actor.language)]
    if errors:
        raise ValidationFailed(errors)
    ts = now()
    fields: dict[str, Any] = {k: v for k, v in changes.items() if k in UPDATABLE}
    if new_status is not None and new_status != req.status:
        fields["status_changed_at"] = ts
        if new_status == Status.open:
            fields["assigned_admin_id"] = None
        if new_status == Status.completed:
            fields["completed_at"] = ts
    if "title" in fields or "description" in fields:
        fields["search_text"] = build_search_text(
            fields.get("title", req.title), fields.get("description", req.description), req.customer
        )
    fields["updated_at"] = ts
    async with in_transaction() as conn:
        await CustomerRequest.filter(id=req.id).using_db(conn).update(**fields)
        if "status_changed_at" in fields:
            # Like every move, a director's direct status change is recorded in the thread.
            label = STATUS_LABELS[lang_of(actor.language)][new_status]
            text = t("request_status_changed", actor.language, status=label, name=display_name(actor))
            await _add_system_message(conn, req, actor, text, ts)
        fresh = await _load(req.id, conn)
        await history.record_diff(conn, req, fresh, actor)
        await events.record_event(events.REQUEST_UPDATED, request_data(fresh), using_db=conn)
        await _record_status_change(conn, fresh, req.status)
    events.committed()
    return fresh


async def set_status(actor: User, request_id: int, status: str) -> CustomerRequest:
    """A director's direct status change (any status to any other; to `open` also clears
    the assignee): PermissionDenied for anyone else, then exactly update_request with
    `{"status": status}` (its validation, system message, history and event). The
    console's "set status"; REST's PATCH keeps answering a non-director 400 on the field."""
    require_director(actor)
    return await update_request(actor, request_id, {"status": status})


async def delete_request(actor: User, request_id: int) -> None:
    """Directors only (PermissionDenied for anyone else; NotFound for an unknown id).

    One transaction deletes the request with its thread and attachment rows and records
    request_updated with `deleted: true`; after the commit its files are removed from
    MEDIA_ROOT (a failure to remove is logged, the deletion stands)."""
    req = await get_request(actor, request_id)
    require_director(actor)
    from core.attachments import remove_request_files
    from db.models import RequestAttachment

    async with in_transaction() as conn:
        stored = await RequestAttachment.filter(request_id=req.id).using_db(conn).values_list(
            "file", flat=True
        )
        data = request_data(req)
        await CustomerRequest.filter(id=req.id).using_db(conn).delete()
        await history.record_deleted(conn, req, actor)
        await audit.record(
            "request_deleted", actor, target=("request", req.id), details={"title": req.title},
            using_db=conn,
        )
        await events.record_event(
            events.REQUEST_UPDATED, {**data, "deleted": True}, using_db=conn
        )
    events.committed()
    await remove_request_files(req.id, list(stored))


async def count_message(conn: Any, request_id: int, msg: RequestMessage) -> None:
    """A new message in the thread (in the caller's transaction): last_message_at, and the
    counts staff see (every message) and the customer sees (not internal notes)."""
    fields: dict[str, Any] = {
        "last_message_at": msg.created_at, "messages_count": F("messages_count") + 1,
    }
    if not msg.is_internal:
        fields["public_messages_count"] = F("public_messages_count") + 1
    await CustomerRequest.filter(id=request_id).using_db(conn).update(**fields)


async def _add_system_message(
    conn: Any, req: CustomerRequest, actor: User, content: str, ts: datetime,
    *, is_internal: bool = False,
) -> RequestMessage:
    msg = await RequestMessage.create(
        request_id=req.id,
        sender_id=actor.id,
        sender_type=SenderType.admin if is_staff(actor) else SenderType.customer,
        content=content,
        message_type=MessageType.system,
        is_internal=is_internal,
        using_db=conn,
    )
    await count_message(conn, req.id, msg)
    await events.record_event(events.NEW_MESSAGE, message_data(msg, actor), using_db=conn)
    return msg


async def _record_status_change(conn: Any, fresh: CustomerRequest, previous: str) -> None:
    """The request_status_changed event of a move (after its request_updated), when the
    status really changed."""
    if str(fresh.status) == str(previous):
        return
    await events.record_event(
        events.REQUEST_STATUS_CHANGED,
        {"id": fresh.id, "previous_status": str(previous), "status": str(fresh.status),
         "request": request_data(fresh)},
        using_db=conn,
    )


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
        msg = await _add_system_message(conn, req, author, content, now(), is_internal=True)
    events.committed()
    return msg


async def take_request(actor: User, request_id: int) -> CustomerRequest:
    """Assign the request to `actor` and move it to in_progress.

    Atomic: one conditional UPDATE (unassigned and open); of many concurrent takers exactly
    one wins, the others get Conflict naming the winner and nothing else changes.
    Events: request_updated, new_message (the system message).
    """
    if not is_staff(actor):
        raise PermissionDenied(t("err_no_permission", actor.language))
    req = await _load(request_id)
    if req.assigned_admin_id is not None:
        raise Conflict(t("err_already_assigned", actor.language))
    if req.status != Status.open:
        raise Conflict(t("err_cannot_take_status", actor.language, status=req.status))
    ts = now()
    async with in_transaction() as conn:
        won = await CustomerRequest.filter(
            id=request_id, assigned_admin_id__isnull=True, status=Status.open
        ).using_db(conn).update(
            assigned_admin_id=actor.id,
            status=Status.in_progress,
            status_changed_at=ts,
            updated_at=ts,
        )
        if won:
            await _add_system_message(
                conn, req, actor, t("request_taken", actor.language, name=display_name(actor)), ts
            )
            fresh = await _load(request_id, conn)
            await history.record_diff(conn, req, fresh, actor)
            await events.record_event(events.REQUEST_UPDATED, request_data(fresh), using_db=conn)
            await _record_status_change(conn, fresh, req.status)
    if not won:
        raise Conflict(t("err_already_assigned", actor.language))
    events.committed()
    return fresh


async def complete_request(actor: User, request_id: int) -> CustomerRequest:
    """in_progress -> completed; only the assignee or a director (PermissionDenied otherwise).
    Conditional on the status it read, so a concurrent change is never overwritten."""
    if not is_staff(actor):
        raise PermissionDenied(t("err_no_permission", actor.language))
    req = await _load(request_id)
    if req.assigned_admin_id != actor.id and not is_director(actor):
        raise PermissionDenied(t("err_complete_foreign", actor.language))
    if req.status != Status.in_progress:
        raise Conflict(t("err_not_in_progress", actor.language, status=req.status))
    return await _move(
        actor, req, Status.in_progress, Status.completed,
        t("request_completed", actor.language, name=display_name(actor)),
    )


async def close_request(actor: User, request_id: int) -> CustomerRequest:
    """completed -> closed, director only."""
    require_director(actor)
    req = await _load(request_id)
    if req.status != Status.completed:
        raise Conflict(t("err_close_status", actor.language, status=req.status))
    return await _move(
        actor, req, Status.completed, Status.closed,
        t("request_closed", actor.language, name=display_name(actor)),
    )


async def reopen_request(actor: User, request_id: int) -> CustomerRequest:
    """completed/closed -> in_progress (if assigned) or open, director only."""
    require_director(actor)
    req = await _load(request_id)
    if req.status not in (Status.completed, Status.closed):
        raise Conflict(t("err_reopen_status", actor.language))
    target = Status.in_progress if req.assigned_admin_id else Status.open
    return await _move(
        actor, req, req.status, target, t("request_reopened", actor.language, name=display_name(actor))
    )


async def reassign_request(actor: User, request_id: int, admin_id: int) -> CustomerRequest:
    """Director assigns the request to another admin (open requests move to in_progress)."""
    require_director(actor)
    req = await _load(request_id)
    admin = await User.filter(id=admin_id, is_active=True).first()
    if admin is None or admin.role not in (Role.admin, Role.director):
        raise ValidationFailed({"admin_id": [t("err_bad_assignee", actor.language)]})
    if req.status in (Status.completed, Status.closed):
        raise Conflict(t("err_reopen_status", actor.language))
    ts = now()
    async with in_transaction() as conn:
        changed = await CustomerRequest.filter(id=req.id, status=req.status).using_db(conn).update(
            assigned_admin_id=admin.id, status=Status.in_progress, status_changed_at=ts, updated_at=ts
        )
        if changed:
            await _add_system_message(
                conn, req, actor, t("request_reassigned", actor.language, name=display_name(admin)), ts
            )
            fresh = await _load(req.id, conn)
            await history.record_diff(conn, req, fresh, actor)
            await events.record_event(events.REQUEST_UPDATED, request_data(fresh), using_db=conn)
            await _record_status_change(conn, fresh, req.status)
    if not changed:
        raise Conflict(t("err_manage_request", actor.language))
    events.committed()
    return fresh


async def _move(
    actor: User, req: CustomerRequest, from_status: Status, to_status: Status, text: str,
    *, system_actor: User | None = None, automatic: bool = False,
) -> CustomerRequest:
    ts = now()
    fields: dict[str, Any] = {"status": to_status, "status_changed_at": ts, "updated_at": ts}
    if to_status == Status.open:
        fields["assigned_admin_id"] = None
    if to_status == Status.completed:
        fields["completed_at"] = ts
    async with in_transaction() as conn:
        changed = await CustomerRequest.filter(id=req.id, status=from_status).using_db(conn).update(**fields)
        if changed:
            await _add_system_message(conn, req, system_actor or actor, text, ts)
            fresh = await _load(req.id, conn)
            # An automatic move (auto-close) is the desk's, not the author's of its message.
            await history.record_diff(conn, req, fresh, None if automatic else actor)
            await events.record_event(events.REQUEST_UPDATED, request_data(fresh), using_db=conn)
            await _record_status_change(conn, fresh, from_status)
    if not changed:
        raise Conflict(t("err_manage_request", actor.language))
    events.committed()
    return fresh


async def auto_close_request(request_id: int, days: int) -> CustomerRequest | None:
    """Scheduler: completed -> closed after a quiet period. The system message is written
    on behalf of the assignee (or the customer). Returns None if it moved meanwhile."""
    req = await _load(request_id)
    if req.status != Status.completed:
        return None
    author = req.assigned_admin or req.customer
    lang = runtime.settings().language
    try:
        return await _move(
            author, req, Status.completed, Status.closed,
            t("request_auto_closed", lang, days=days), automatic=True,
        )
    except Conflict:
        return None


async def post_message(
    actor: User,
    request_id: int,
    content: str,
    *,
    is_internal: bool = False,
    message_type: str = MessageType.text,
    source: Source = Source.api,
) -> RequestMessage:
    """Add a message to a request's thread; updates last_message_at and messages_count.

    Staff: CanManageRequest; sender_type admin; may mark it internal (never shown to the
    customer). Customer: own request only, never internal, not once it is closed, not
    while banned (PermissionDenied, core.bans).
    Event: new_message (with `is_internal`, so channels can keep notes private).
    """
    req = await get_request(actor, request_id)
    staff = is_staff(actor)
    if staff:
        # Internal notes are collaboration, allowed on every request; replies follow CanManageRequest.
        if not is_internal:
            require_manage_request(actor, req)
    else:
        require_not_banned(actor)
        is_internal = False
        if req.status == Status.closed:
            raise Conflict(t("err_closed", actor.language))
    errors: dict[str, list[str]] = {}
    check_text(errors, "content", content, current_limits().content, actor.language)
    if message_type not in (MessageType.text, MessageType.image, MessageType.file):
        errors["message_type"] = [f"Значения {message_type} нет среди допустимых вариантов."]
    if errors:
        raise ValidationFailed(errors)
    async with in_transaction() as conn:
        msg = await RequestMessage.create(
            request_id=req.id,
            sender_id=actor.id,
            sender_type=SenderType.admin if staff else SenderType.customer,
            content=content,
            message_type=message_type,
            is_internal=bool(is_internal),
            source=source,
            using_db=conn,
        )
        await count_message(conn, req.id, msg)
        await staff_stats.note_first_response(conn, req, msg)
        await events.record_event(events.NEW_MESSAGE, message_data(msg, actor), using_db=conn)
    events.committed()
    msg.sender = actor
    return msg


def overdue_after(priority: str) -> timedelta:
    s = runtime.settings()
    minutes = {
        "urgent": s.remind_urgent_min,
        "high": s.remind_high_min,
        "medium": s.remind_medium_min,
        "low": s.remind_low_min,
    }[priority]
    return timedelta(minutes=minutes)
