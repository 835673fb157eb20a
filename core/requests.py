"""Request use cases: create, read, list, update, take, complete, close, reopen, reassign, messages.

Every write is one transaction that also records its events (see core.events); every
rule comes from core.permissions. Channels (REST, bot, scheduler, web form) call these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.expressions import F, Q
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from core import events, runtime
from core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from core.permissions import (
    can_see_internal,
    can_view_request,
    is_director,
    is_staff,
    require_director,
    require_manage_request,
)
from core.security import new_access_key
from core.serializers import message_data, request_data
from core.texts import t
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

PAGE_SIZE = 20


def now() -> datetime:
    return datetime.now(timezone.utc)


def build_search_text(title: str, description: str, customer: User) -> str:
    return " ".join(
        [title, description, customer.first_name, customer.last_name, customer.email]
    ).lower()


async def _load(request_id: int, using_db: Any = None) -> CustomerRequest:
    req = (
        await CustomerRequest.filter(id=request_id)
        .using_db(using_db)
        .select_related("customer", "assigned_admin")
        .first()
    )
    if req is None:
        raise NotFound(t("err_not_found"))
    return req


async def get_request(actor: User, request_id: int) -> CustomerRequest:
    """The request if `actor` may see it; NotFound otherwise (ids never leak existence)."""
    req = await _load(request_id)
    if not can_view_request(actor, req):
        raise NotFound(t("err_not_found", actor.language))
    return req


@dataclass
class RequestFilters:
    status: str | None = None
    priority: str | None = None
    category: str | None = None
    search: str | None = None
    assigned_admin_id: int | None = None
    unassigned: bool = False
    customer_id: int | None = None


def _validate_filters(f: RequestFilters) -> None:
    errors: dict[str, list[str]] = {}
    for name, enum in (("status", Status), ("priority", Priority), ("category", Category)):
        value = getattr(f, name)
        if value is not None and value not in enum.__members__:
            errors[name] = [
                f"Выберите корректный вариант. {value} нет среди допустимых значений."
            ]
    if errors:
        raise ValidationFailed(errors)


def _filtered(actor: User, f: RequestFilters):
    _validate_filters(f)
    qs = CustomerRequest.all()
    if not is_staff(actor):
        qs = qs.filter(customer_id=actor.id)
    elif f.customer_id is not None:
        qs = qs.filter(customer_id=f.customer_id)
    if f.status:
        qs = qs.filter(status=f.status)
    if f.priority:
        qs = qs.filter(priority=f.priority)
    if f.category:
        qs = qs.filter(category=f.category)
    if f.assigned_admin_id is not None:
        qs = qs.filter(assigned_admin_id=f.assigned_admin_id)
    if f.unassigned:
        qs = qs.filter(assigned_admin_id__isnull=True)
    if f.search and f.search.strip():
        qs = qs.filter(search_text__contains=f.search.strip().lower())
    return qs


async def list_requests(
    actor: User, filters: RequestFilters, page: int = 1, page_size: int = PAGE_SIZE
) -> tuple[int, list[CustomerRequest]]:
    """One page, newest first, and the total count. Constant number of queries (2)."""
    qs = _filtered(actor, filters)
    total = await qs.count()
    if page < 1 or (page > 1 and (page - 1) * page_size >= total):
        raise NotFound("Неправильная страница")
    rows = (
        await qs.order_by("-created_at", "-id")
        .offset((page - 1) * page_size)
        .limit(page_size)
        .select_related("customer", "assigned_admin")
    )
    return total, rows


def _check_text(errors: dict[str, list[str]], name: str, value: Any, max_len: int | None) -> None:
    if value is None or (isinstance(value, str) and not value.strip()):
        errors[name] = ["Это поле не может быть пустым."]
    elif not isinstance(value, str):
        errors[name] = ["Not a valid string."]
    elif max_len and len(value) > max_len:
        errors[name] = [f"Убедитесь, что это значение содержит не более {max_len} символов."]


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

    One transaction: the request and a `new_request` event.
    """
    errors: dict[str, list[str]] = {}
    _check_text(errors, "title", title, 200)
    _check_text(errors, "description", description, None)
    if priority not in Priority.__members__:
        errors["priority"] = [f"Значения {priority} нет среди допустимых вариантов."]
    if category not in Category.__members__:
        errors["category"] = [f"Значения {category} нет среди допустимых вариантов."]
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
    if "title" in changes:
        _check_text(errors, "title", changes["title"], 200)
    if "description" in changes:
        _check_text(errors, "description", changes["description"], None)
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
    if "title" in fields or "description" in fields:
        fields["search_text"] = build_search_text(
            fields.get("title", req.title), fields.get("description", req.description), req.customer
        )
    fields["updated_at"] = ts
    async with in_transaction() as conn:
        await CustomerRequest.filter(id=req.id).using_db(conn).update(**fields)
        fresh = await _load(req.id, conn)
        await events.record_event(events.REQUEST_UPDATED, request_data(fresh), using_db=conn)
    events.committed()
    return fresh


async def delete_request(actor: User, request_id: int) -> None:
    """Staff with CanManageRequest. Announced as request_updated with `deleted: true`."""
    req = await get_request(actor, request_id)
    if not is_staff(actor):
        raise PermissionDenied(t("err_no_permission", actor.language))
    require_manage_request(actor, req)
    async with in_transaction() as conn:
        data = request_data(req)
        await CustomerRequest.filter(id=req.id).using_db(conn).delete()
        await events.record_event(
            events.REQUEST_UPDATED, {**data, "deleted": True}, using_db=conn
        )
    events.committed()


async def _add_system_message(
    conn: Any, req: CustomerRequest, actor: User, content: str, ts: datetime
) -> RequestMessage:
    msg = await RequestMessage.create(
        request_id=req.id,
        sender_id=actor.id,
        sender_type=SenderType.admin if is_staff(actor) else SenderType.customer,
        content=content,
        message_type=MessageType.system,
        using_db=conn,
    )
    await CustomerRequest.filter(id=req.id).using_db(conn).update(
        last_message_at=msg.created_at, messages_count=F("messages_count") + 1
    )
    await events.record_event(events.NEW_MESSAGE, message_data(msg, actor), using_db=conn)
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
                conn, req, actor, t("request_taken", actor.language, name=actor.full_name), ts
            )
            fresh = await _load(request_id, conn)
            await events.record_event(events.REQUEST_UPDATED, request_data(fresh), using_db=conn)
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
        t("request_completed", actor.language, name=actor.full_name),
    )


async def close_request(actor: User, request_id: int) -> CustomerRequest:
    """completed -> closed, director only."""
    require_director(actor)
    req = await _load(request_id)
    if req.status != Status.completed:
        raise Conflict(t("err_close_status", actor.language, status=req.status))
    return await _move(
        actor, req, Status.completed, Status.closed,
        t("request_closed", actor.language, name=actor.full_name),
    )


async def reopen_request(actor: User, request_id: int) -> CustomerRequest:
    """completed/closed -> in_progress (if assigned) or open, director only."""
    require_director(actor)
    req = await _load(request_id)
    if req.status not in (Status.completed, Status.closed):
        raise Conflict(t("err_reopen_status", actor.language))
    target = Status.in_progress if req.assigned_admin_id else Status.open
    return await _move(
        actor, req, req.status, target, t("request_reopened", actor.language, name=actor.full_name)
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
                conn, req, actor, t("request_reassigned", actor.language, name=admin.full_name), ts
            )
            fresh = await _load(req.id, conn)
            await events.record_event(events.REQUEST_UPDATED, request_data(fresh), using_db=conn)
    if not changed:
        raise Conflict(t("err_manage_request", actor.language))
    events.committed()
    return fresh


async def _move(
    actor: User, req: CustomerRequest, from_status: Status, to_status: Status, text: str,
    *, system_actor: User | None = None,
) -> CustomerRequest:
    ts = now()
    fields: dict[str, Any] = {"status": to_status, "status_changed_at": ts, "updated_at": ts}
    if to_status == Status.open:
        fields["assigned_admin_id"] = None
    async with in_transaction() as conn:
        changed = await CustomerRequest.filter(id=req.id, status=from_status).using_db(conn).update(**fields)
        if changed:
            await _add_system_message(conn, req, system_actor or actor, text, ts)
            fresh = await _load(req.id, conn)
            await events.record_event(events.REQUEST_UPDATED, request_data(fresh), using_db=conn)
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
            t("request_auto_closed", lang, days=days),
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
    customer). Customer: own request only, never internal, not once it is closed.
    Event: new_message (with `is_internal`, so channels can keep notes private).
    """
    req = await get_request(actor, request_id)
    staff = is_staff(actor)
    if staff:
        # Internal notes are collaboration, allowed on every request; replies follow CanManageRequest.
        if not is_internal:
            require_manage_request(actor, req)
    else:
        is_internal = False
        if req.status == Status.closed:
            raise Conflict(t("err_closed", actor.language))
    errors: dict[str, list[str]] = {}
    _check_text(errors, "content", content, None)
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
        await CustomerRequest.filter(id=req.id).using_db(conn).update(
            last_message_at=msg.created_at, messages_count=F("messages_count") + 1
        )
        await events.record_event(events.NEW_MESSAGE, message_data(msg, actor), using_db=conn)
    events.committed()
    msg.sender = actor
    return msg


async def list_messages(actor: User, request_id: int) -> list[RequestMessage]:
    """Oldest first; customers never see internal notes."""
    req = await get_request(actor, request_id)
    qs = RequestMessage.filter(request_id=req.id)
    if not can_see_internal(actor):
        qs = qs.filter(is_internal=False)
    return await qs.order_by("created_at", "id").select_related("sender")


async def stats(tz: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """The seed's stats in one aggregate query. completed_today counts requests moved to
    completed since local midnight (in TZ) of `now` (default: the current time)."""
    zone = ZoneInfo(tz or runtime.settings().tz)
    local_now = now.astimezone(zone) if now is not None else datetime.now(zone)
    local_midnight = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    today_start = local_midnight.astimezone(timezone.utc)
    row = (
        await CustomerRequest.all()
        .annotate(
            total=Count("id"),
            open_n=Count("id", _filter=Q(status=Status.open)),
            progress_n=Count("id", _filter=Q(status=Status.in_progress)),
            completed_n=Count("id", _filter=Q(status=Status.completed)),
            today_n=Count(
                "id", _filter=Q(status=Status.completed, status_changed_at__gte=today_start)
            ),
        )
        .first()
        .values("total", "open_n", "progress_n", "completed_n", "today_n")
    )
    total = row["total"] or 0
    completed = row["completed_n"] or 0
    return {
        "total_requests": total,
        "open_requests": row["open_n"] or 0,
        "in_progress_requests": row["progress_n"] or 0,
        "completed_today": row["today_n"] or 0,
        "completion_rate": round(completed / total * 100, 2) if total else 0,
    }


def overdue_after(priority: str) -> timedelta:
    s = runtime.settings()
    minutes = {
        "urgent": s.remind_urgent_min,
        "high": s.remind_high_min,
        "medium": s.remind_medium_min,
        "low": s.remind_low_min,
    }[priority]
    return timedelta(minutes=minutes)
