"""Internal communications between departments (the seed's InternalCommunication). Staff only.

Object rules: every participant is an active admin or director; only the sender edits what
the communication says and who takes part (departments, subject, content, priority,
request, participants); participants (and directors) may move its status (read, replied).
"""

from __future__ import annotations

from typing import Any

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from core.errors import NotFound, PermissionDenied, ValidationFailed
from core.limits import check_text
from core.limits import current as current_limits
from core.permissions import is_director, is_staff, require_staff
from core.serializers import communication_data
from core.texts import t
from db.models import CommPriority, CommStatus, CustomerRequest, InternalCommunication, User

PAGE_SIZE = 20


def _validate(data: dict[str, Any], partial: bool, lang: str | None) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    lim = current_limits()
    limits = {"from_department": lim.department, "to_department": lim.department,
              "subject": lim.subject, "content": lim.communication}
    for name, limit in limits.items():
        if name not in data:
            if not partial:
                errors[name] = [t("err_required_field")]
            continue
        check_text(errors, name, data[name], limit, lang)
    if "priority" in data and data["priority"] not in CommPriority.__members__:
        errors["priority"] = [t("err_invalid_choice", value=data["priority"])]
    if "status" in data and data["status"] not in CommStatus.__members__:
        errors["status"] = [t("err_invalid_choice", value=data["status"])]
    if "participants" in data and (
        not isinstance(data["participants"], list)
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in data["participants"])
    ):
        errors["participants"] = [t("err_id_list")]
    if "request" in data and data["request"] is not None and (
        not isinstance(data["request"], int) or isinstance(data["request"], bool)
    ):
        errors["request"] = [t("err_pk_type")]
    return errors


async def _participant_ids(comm_ids: list[int]) -> dict[int, list[int]]:
    rows = await InternalCommunication.filter(id__in=comm_ids).values("id", "participants__id")
    out: dict[int, list[int]] = {i: [] for i in comm_ids}
    for r in rows:
        if r["participants__id"]:
            out[r["id"]].append(r["participants__id"])
    return {k: sorted(v) for k, v in out.items()}


async def list_communications(
    actor: User, *, status: str | None = None, page: int = 1
) -> tuple[int, list[dict[str, Any]]]:
    require_staff(actor)
    if status is not None and status not in CommStatus.__members__:
        raise ValidationFailed({"status": [t("err_invalid_choice", value=status)]})
    base = InternalCommunication.all()
    if not is_director(actor):
        base = base.filter(Q(sender_id=actor.id) | Q(participants__id=actor.id)).distinct()
    if status:
        base = base.filter(status=status)
    total = await base.count()
    if page < 1 or (page > 1 and (page - 1) * PAGE_SIZE >= total):
        raise NotFound(t("err_bad_page"))
    rows = await base.order_by("-created_at", "-id").offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
    parts = await _participant_ids([r.id for r in rows])
    return total, [communication_data(r, parts[r.id]) for r in rows]


async def get_communication(actor: User, comm_id: int) -> dict[str, Any]:
    require_staff(actor)
    comm = await InternalCommunication.filter(id=comm_id).first()
    if comm is None:
        raise NotFound(t("err_not_found", actor.language))
    parts = (await _participant_ids([comm.id]))[comm.id]
    if not is_director(actor) and comm.sender_id != actor.id and actor.id not in parts:
        raise NotFound(t("err_not_found", actor.language))
    return communication_data(comm, parts)


async def create_communication(actor: User, data: dict[str, Any]) -> dict[str, Any]:
    require_staff(actor)
    errors = _validate(data, partial=False, lang=actor.language)
    request_id = data.get("request")
    if not errors and request_id is not None and not await CustomerRequest.filter(id=request_id).exists():
        errors["request"] = [t("err_pk_missing", value=request_id)]
    participant_ids = data.get("participants") or []
    users: list[User] = []
    if not errors and participant_ids:
        users = await _staff_participants(participant_ids, errors, actor.language)
    if errors:
        raise ValidationFailed(errors)
    async with in_transaction() as conn:
        comm = await InternalCommunication.create(
            request_id=request_id,
            from_department=data["from_department"].strip(),
            to_department=data["to_department"].strip(),
            subject=data["subject"].strip(),
            content=data["content"],
            priority=data.get("priority", CommPriority.medium),
            sender_id=actor.id,
            using_db=conn,
        )
        if users:
            await comm.participants.add(*users, using_db=conn)
    return communication_data(comm, sorted(u.id for u in users))


SENDER_FIELDS = ("from_department", "to_department", "subject", "content", "priority",
                 "request", "participants")


async def _staff_participants(
    ids: list[int], errors: dict[str, list[str]], lang: str | None
) -> list[User]:
    """The users for `ids` if every one exists and is active staff; an error otherwise."""
    users = await User.filter(id__in=ids)
    if len(users) != len(set(ids)):
        errors["participants"] = [t("err_users_missing")]
    elif not all(is_staff(u) for u in users):
        errors["participants"] = [t("err_comm_staff_only", lang)]
    return users


def _changes(name: str, value: Any, current: dict[str, Any]) -> bool:
    if name == "participants":
        return not isinstance(value, list) or sorted(set(value)) != current["participants"]
    if isinstance(value, str) and name != "content":
        value = value.strip()
    return value != current.get(name)


async def update_communication(actor: User, comm_id: int, data: dict[str, Any], partial: bool) -> dict[str, Any]:
    """PUT/PATCH. Changing what it says or who takes part is the sender's alone
    (PermissionDenied for participants and directors alike); `status` may be moved by
    anyone who can see it."""
    current = await get_communication(actor, comm_id)
    if current["sender"] != actor.id and any(
        k in data and _changes(k, data[k], current) for k in SENDER_FIELDS
    ):
        raise PermissionDenied(t("err_comm_sender_only", actor.language))
    errors = _validate(data, partial=partial, lang=actor.language)
    users: list[User] = []
    if not errors and "participants" in data:
        users = await _staff_participants(data["participants"], errors, actor.language)
    if errors:
        raise ValidationFailed(errors)
    fields = {
        k: (v.strip() if isinstance(v, str) and k != "content" else v)
        for k, v in data.items()
        if k in ("from_department", "to_department", "subject", "content", "priority", "status")
    }
    async with in_transaction() as conn:
        if fields:
            await InternalCommunication.filter(id=comm_id).using_db(conn).update(**fields)
        if "participants" in data:
            comm = await InternalCommunication.get(id=comm_id, using_db=conn)
            await comm.participants.clear(using_db=conn)
            if users:
                await comm.participants.add(*users, using_db=conn)
    return await get_communication(actor, comm_id)
