"""Request edits: create, update (PUT/PATCH), delete.

Every write is one transaction that also records its history and events (core.events).
A status change inside an update is a move of core.lifecycle (its table decides whether
it is allowed), made in the same UPDATE as the other fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tortoise import connections
from tortoise.transactions import in_transaction

from core import audit, events, history, lifecycle, pg_writes
from core.bans import require_not_banned
from core.errors import PermissionDenied, ValidationFailed
from core.limits import check_tags, check_text
from core.limits import current as current_limits
from core.permissions import is_director, is_staff, require_director, require_manage_request
from core.security import new_access_key
from core.serializers import request_data
from core.texts import t
from db.models import Category, CustomerRequest, Priority, Source, Status, User


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

    Atomic: the request, its history row and a `new_request` event (on PostgreSQL one
    statement, core.pg_writes; on SQLite one transaction, a savepoint when the caller has
    one open, as the web form does).
    """
    from core.clock import now
    errors: dict[str, list[str]] = {}
    limits = current_limits()
    lang = actor.language
    check_text(errors, "title", title, limits.title, lang)
    check_text(errors, "description", description, limits.content, lang)
    tags = check_tags(errors, tags, lang, limits)
    if priority not in Priority.__members__:
        errors["priority"] = [t("err_invalid_choice", value=priority)]
    if category not in Category.__members__:
        errors["category"] = [t("err_invalid_choice", value=category)]
    require_not_banned(actor)
    customer = actor
    if customer_id is not None and customer_id != actor.id:
        if not is_staff(actor):
            raise PermissionDenied(t("err_no_permission", actor.language))
        found = await User.filter(id=customer_id).first()
        if found is None:
            errors["customer_id"] = [t("err_pk_missing", value=customer_id)]
        else:
            customer = found
    if errors:
        raise ValidationFailed(errors)
    ts = now()
    values: dict[str, Any] = {
        "title": title.strip(),
        "description": description,
        "status": Status.open,
        "priority": priority,
        "category": category,
        "customer_id": customer.id,
        "created_at": ts,
        "updated_at": ts,
        "tags": list(tags or []),
        "estimated_resolution_time": estimated_resolution_time,
        "messages_count": 0,
        "public_messages_count": 0,
        "status_changed_at": ts,
        "source": source,
        "access_key": new_access_key() if with_access_key else None,
        "search_text": build_search_text(title, description, customer),
    }
    db = connections.get("default")  # the caller's transaction, when it has one open
    if db.capabilities.dialect == "postgres":
        # the row, its history row and its event in one statement (core/pg_writes.py),
        # atomic without a transaction of its own
        draft = pg_writes.draft(CustomerRequest, values, customer=customer, assigned_admin=None)
        req = await pg_writes.add_request(
            db, values, history.created_columns(draft, actor, ts),
            (events.NEW_REQUEST, events.ADMIN_TOPIC, request_data(draft)),
        )
        req.customer, req.assigned_admin = customer, None
    else:
        async with in_transaction() as conn:
            req = await CustomerRequest.create(**values, using_db=conn)
            req.customer, req.assigned_admin = customer, None
            await history.record_created(conn, req, actor)
            await events.record_event(events.NEW_REQUEST, request_data(req), using_db=conn)
    events.committed()
    return req


# Columns a PUT/PATCH writes as given; `status` goes through core.lifecycle.
UPDATABLE = {"title", "description", "priority", "category", "estimated_resolution_time", "tags"}


async def update_request(actor: User, request_id: int, changes: dict[str, Any]) -> CustomerRequest:
    """PUT/PATCH. Staff only, CanManageRequest. A `status` different from the current one
    is a director's direct move (core.lifecycle.direct_move): anyone else, or a move the
    table does not allow, gets ValidationFailed on `status` naming the allowed statuses."""
    from core.clock import now
    from core.queries import get_request
    from core.queries import load_request as _load

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
        errors["priority"] = [t("err_invalid_choice", value=changes["priority"])]
    if "category" in changes and changes["category"] not in Category.__members__:
        errors["category"] = [t("err_invalid_choice", value=changes["category"])]
    new_status = changes.get("status")
    move = None
    if new_status is not None and new_status != req.status:
        if new_status not in Status.__members__:
            errors["status"] = [t("err_invalid_choice", value=new_status)]
        elif not is_director(actor):
            errors["status"] = [t("err_director_only", actor.language)]
        else:
            # Only the moves of the lifecycle table: never open -> completed, never
            # in_progress without an assignee.
            move = lifecycle.direct_move(req, new_status)
            if move is None:
                errors["status"] = [lifecycle.refusal(actor, req, new_status)]
    if errors:
        raise ValidationFailed(errors)
    fields: dict[str, Any] = {k: v for k, v in changes.items() if k in UPDATABLE}
    if "title" in fields or "description" in fields:
        fields["search_text"] = build_search_text(
            fields.get("title", req.title), fields.get("description", req.description), req.customer
        )
    if move is not None:
        # Like every move, a director's direct status change is recorded in the thread.
        return await lifecycle.run(
            actor, req, move, fields=fields, text=lifecycle.status_change_text(actor, new_status)
        )
    fields["updated_at"] = now()
    async with in_transaction() as conn:
        await CustomerRequest.filter(id=req.id).using_db(conn).update(**fields)
        fresh = await _load(req.id, conn)
        await history.record_diff(conn, req, fresh, actor)
        await events.record_event(events.REQUEST_UPDATED, request_data(fresh), using_db=conn)
    events.committed()
    return fresh


async def delete_request(actor: User, request_id: int) -> None:
    """Directors only (PermissionDenied for anyone else; NotFound for an unknown id).

    One transaction deletes the request with its thread and attachment rows and records
    request_updated with `deleted: true`; after the commit its files are removed from
    MEDIA_ROOT (a failure to remove is logged, the deletion stands)."""
    from core.queries import get_request

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
