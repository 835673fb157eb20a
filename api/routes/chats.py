"""/api/admin/chats/: the seed's AdminChatViewSet (staff only; messages for participants)."""

from __future__ import annotations

from typing import Any

from sanic import Request

from api.blueprint import Blueprint
from api.http import authenticate_staff, body, guard_ids, json
from api.schemas import chats as schemas
from api.schemas.base import check, given, validated
from core import chats as svc
from core.serializers import chat_message_data


def chat_changes(data: dict[str, Any], partial: bool) -> dict[str, Any]:
    """A create/replace (POST, PUT) or update (PATCH) body: the fields sent, checked by the
    body model the OpenAPI document shows."""
    return given(check(schemas.AdminChatUpdate if partial else schemas.AdminChatCreate, data))


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
        data = validated(request, schemas.ChatMessageCreate)
        msg = await svc.post_chat_message(
            actor,
            chat_id,
            data.content,
            reply_to_id=data.reply_to,
            message_type=data.message_type,
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
        user_id = validated(request, schemas.RemoveParticipant).user_id
        await svc.remove_participant(actor, chat_id, user_id)
        return json({"status": "removed"})

    return bp
