"""/api/admin/chats/: the seed's AdminChatViewSet (staff only; messages for participants)."""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, Request

from api.http import PK_WRONG_TYPE, authenticate_staff, body, check_id_ranges, guard_ids, json
from core import chats as svc
from core.errors import ValidationFailed
from core.serializers import chat_message_data
from core.texts import t


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def chat_changes(data: dict[str, Any], partial: bool) -> dict[str, Any]:
    """Validate a create/update body (DRF error shapes)."""
    errors: dict[str, list[str]] = {}
    if not partial and "name" not in data:
        errors["name"] = [t("err_required_field")]
    for name in ("name", "chat_type"):
        if name in data and not isinstance(data[name], str):
            errors[name] = ["Not a valid string."]
    if "is_active" in data and not isinstance(data["is_active"], bool):
        errors["is_active"] = [t("err_not_bool")]
    if "participant_ids" in data and (
        not isinstance(data["participant_ids"], list)
        or not all(_is_int(i) for i in data["participant_ids"])
    ):
        errors["participant_ids"] = [t("err_id_list")]
    if errors:
        raise ValidationFailed(errors)
    check_id_ranges(data, lists=("participant_ids",))
    return {k: data[k] for k in ("name", "chat_type", "is_active", "participant_ids") if k in data}


def get_blueprint() -> Blueprint:
    bp = Blueprint("chats", url_prefix="/api/admin/chats")
    guard_ids(bp)

    @bp.get("/")
    async def list_chats(request: Request):
        return json(await svc.list_chats(await authenticate_staff(request)))

    @bp.post("/")
    async def create_chat(request: Request):
        actor = await authenticate_staff(request)
        data = chat_changes(body(request), partial=False)
        chat = await svc.create_chat(
            actor,
            name=data["name"],
            chat_type=data.get("chat_type", "general"),
            participant_ids=data.get("participant_ids"),
        )
        return json(await svc.chat_detail(actor, chat.id), status=201)

    @bp.get("/<chat_id:int>/")
    async def retrieve(request: Request, chat_id: int):
        actor = await authenticate_staff(request)
        return json(await svc.chat_detail(actor, chat_id))

    @bp.route("/<chat_id:int>/", methods=["PUT", "PATCH"])
    async def update(request: Request, chat_id: int):
        actor = await authenticate_staff(request)
        data = chat_changes(body(request), partial=request.method == "PATCH")
        data.pop("participant_ids", None)
        chat = await svc.update_chat(actor, chat_id, data)
        # What it looks like now (also when deactivated, or edited by a director who does
        # not take part in it).
        return json((await svc.serialize_chats(actor, [chat]))[0])

    @bp.get("/<chat_id:int>/messages/")
    async def messages(request: Request, chat_id: int):
        actor = await authenticate_staff(request)
        rows = await svc.list_chat_messages(actor, chat_id)
        return json([chat_message_data(m) for m in rows])

    @bp.post("/<chat_id:int>/messages/")
    async def post_message(request: Request, chat_id: int):
        actor = await authenticate_staff(request)
        data = body(request)
        errors: dict[str, list[str]] = {}
        if "content" not in data:
            errors["content"] = [t("err_required_field")]
        elif not isinstance(data["content"], str):
            errors["content"] = ["Not a valid string."]
        if "message_type" in data and not isinstance(data["message_type"], str):
            errors["message_type"] = ["Not a valid string."]
        reply_to = data.get("reply_to")
        if reply_to is not None and not _is_int(reply_to):
            errors["reply_to"] = [PK_WRONG_TYPE]
        if errors:
            raise ValidationFailed(errors)
        check_id_ranges(data, ("reply_to",))
        msg = await svc.post_chat_message(
            actor,
            chat_id,
            data["content"],
            reply_to_id=reply_to,
            message_type=data.get("message_type", "text"),
        )
        return json(chat_message_data(msg, actor), status=201)

    @bp.post("/<chat_id:int>/join/")
    async def join(request: Request, chat_id: int):
        await svc.join_chat(await authenticate_staff(request), chat_id)
        return json({"status": "joined"})

    @bp.post("/<chat_id:int>/read/")
    async def mark_read(request: Request, chat_id: int):
        marked = await svc.mark_chat_read(await authenticate_staff(request), chat_id)
        return json({"status": "read", "marked": marked})

    @bp.post("/<chat_id:int>/leave/")
    async def leave(request: Request, chat_id: int):
        await svc.leave_chat(await authenticate_staff(request), chat_id)
        return json({"status": "left"})

    @bp.post("/<chat_id:int>/remove_participant/")
    async def remove_participant(request: Request, chat_id: int):
        """The chat's creator or a director removes `user_id` from the chat."""
        actor = await authenticate_staff(request)
        data = body(request)
        user_id = data.get("user_id")
        if not _is_int(user_id):
            raise ValidationFailed({"user_id": [t("err_required_member")]})
        check_id_ranges(data, ("user_id",))
        await svc.remove_participant(actor, chat_id, user_id)
        return json({"status": "removed"})

    return bp
