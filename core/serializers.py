"""JSON shapes of the seed's DRF serializers. REST, WebSocket events and the bot share them.

Two sides:
- Staff (`request_data`, `message_data`, ...): the seed's shapes, for /api/admin/, the
  admin WebSocket and event payloads.
- Customers (`customer_request_data`, `customer_message_data`): the ONE shape everything a
  customer sees is built from: customer REST, the web page's JSON and its WebSocket frames
  (api/ws.py), and the bot. Staff appear by display name only (no id, e-mail, username),
  no tags, no internal counts: `messages_count` counts what the customer can see.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core import i18n
from core.texts import t
from db.models import (
    AdminChat,
    ChatMessage,
    CustomerRequest,
    InternalCommunication,
    RequestAttachment,
    RequestMessage,
    User,
)


def dt(value: datetime | None) -> str | None:
    """DRF's DateTimeField: ISO 8601, UTC shown as Z."""
    if value is None:
        return None
    text = value.isoformat()
    if text.endswith("+00:00"):
        text = text[:-6] + "Z"
    return text


def user_data(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {
        "id": user.id,
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "avatar": None,
    }


def request_data(req: CustomerRequest) -> dict[str, Any]:
    """CustomerRequestSerializer; needs `customer` and `assigned_admin` fetched. Beyond the
    seed: whether the customer's e-mail is verified (a web form's address is not) and
    whether the customer is banned."""
    customer = req.customer
    return {
        "id": req.id,
        "title": req.title,
        "description": req.description,
        "status": str(req.status),
        "priority": str(req.priority),
        "category": str(req.category),
        "customer": user_data(req.customer),
        "assigned_admin": user_data(req.assigned_admin) if req.assigned_admin_id else None,
        "created_at": dt(req.created_at),
        "updated_at": dt(req.updated_at),
        "last_message_at": dt(req.last_message_at),
        "messages_count": req.messages_count,
        "estimated_resolution_time": dt(req.estimated_resolution_time),
        "tags": req.tags if req.tags is not None else [],
        "customer_email_verified": bool(customer and customer.email and customer.email_verified),
        "customer_banned": bool(customer and customer.banned_at is not None),
        "rating": req.rating,
        "rating_comment": req.rating_comment or "",
    }


# --- the customer's side --------------------------------------------------------------------

def public_name(user: User | None) -> str:
    """The name a customer sees for a person: first and last name, never a username or an
    address. Empty when there is none (channels then say "support" in their language)."""
    if user is None:
        return ""
    return f"{user.first_name} {user.last_name}".strip()


def display_name(user: User, lang: str | None = None) -> str:
    """How a staff member is named in thread texts a customer reads (system messages):
    their name, or "Support" when they have none (never the username)."""
    return public_name(user) or t("support_name", lang or user.language)


def customer_request_data(req: CustomerRequest) -> dict[str, Any]:
    """A request as its customer sees it; needs `assigned_admin` fetched when assigned."""
    admin = req.assigned_admin if req.assigned_admin_id else None
    return {
        "id": req.id,
        "title": req.title,
        "description": req.description,
        "status": str(req.status),
        "priority": str(req.priority),
        "category": str(req.category),
        "assigned_admin": {"name": public_name(admin), "avatar": None}
        if admin is not None else None,
        "created_at": dt(req.created_at),
        "updated_at": dt(req.updated_at),
        "last_message_at": dt(req.last_message_at),
        "messages_count": req.public_messages_count,
        "estimated_resolution_time": dt(req.estimated_resolution_time),
        # the customer's own rating of a completed request (core.csat)
        "rating": req.rating,
        "rating_comment": req.rating_comment or "",
    }


def message_content(msg: RequestMessage, lang: str | None = None) -> str:
    """A message's text for a reader of `lang`: a system message (content_i18n) in that
    language; any other message (and a reader of unknown language) as stored."""
    if lang and msg.content_i18n:
        text = i18n.from_json(msg.content_i18n)
        if text is not None:
            return text.in_language(lang)
    return msg.content


def customer_message_data(
    msg: RequestMessage,
    sender: User | None = None,
    attachments: list[dict[str, Any]] | None = None,
    lang: str | None = None,
) -> dict[str, Any]:
    """A (non-internal) thread message as the customer sees it; `attachments` when the
    channel shows files with the message (each {id, name, size, content_type, url})."""
    sender = sender or msg.sender
    data = {
        "id": msg.id,
        "request": msg.request_id,
        "sender_type": str(msg.sender_type),
        "sender_name": public_name(sender),
        "sender_avatar": None,
        "content": message_content(msg, lang),
        "message_type": str(msg.message_type),
        "created_at": dt(msg.created_at),
        "edited_at": dt(msg.edited_at),  # the last edit (core.message_edits), or None
    }
    if attachments is not None:
        data["attachments"] = attachments
    return data


def customer_attachment_data(att: RequestAttachment, url: str) -> dict[str, Any]:
    return {"id": att.id, "name": att.name, "size": att.size, "content_type": att.content_type,
            "url": url}


def message_data(
    msg: RequestMessage, sender: User | None = None, lang: str | None = None
) -> dict[str, Any]:
    """RequestMessageSerializer; needs `sender` fetched (or passed). `lang`: the reader's
    language, for system messages (message_content)."""
    sender = sender or msg.sender
    return {
        "id": msg.id,
        "request": msg.request_id,
        "sender": msg.sender_id,
        "sender_type": str(msg.sender_type),
        "sender_name": sender.full_name if sender else "",
        "sender_avatar": None,
        "content": message_content(msg, lang),
        "message_type": str(msg.message_type),
        "is_read": msg.is_read,
        "is_internal": msg.is_internal,
        "created_at": dt(msg.created_at),
        "edited_at": dt(msg.edited_at),
    }


def attachment_data(att: RequestAttachment, url: str) -> dict[str, Any]:
    return {
        "id": att.id,
        "request": att.request_id,
        "message": att.message_id,
        "name": att.name,
        "file": url,
        "size": att.size,
        "content_type": att.content_type,
        "created_at": dt(att.created_at),
    }


def chat_message_data(msg: ChatMessage, sender: User | None = None) -> dict[str, Any]:
    """ChatMessageSerializer."""
    sender = sender or msg.sender
    return {
        "id": msg.id,
        "chat": msg.chat_id,
        "sender": msg.sender_id,
        "sender_name": sender.full_name if sender else "",
        "sender_avatar": None,
        "content": msg.content,
        "message_type": str(msg.message_type),
        "reply_to": msg.reply_to_id,
        "is_read": msg.is_read,
        "created_at": dt(msg.created_at),
    }


def chat_data(
    chat: AdminChat,
    participants: list[User],
    last_message: ChatMessage | None,
    unread_count: int,
) -> dict[str, Any]:
    """AdminChatSerializer."""
    last = None
    if last_message is not None:
        last = {
            "content": last_message.content,
            "sender_name": last_message.sender.full_name,
            "created_at": dt(last_message.created_at),
        }
    return {
        "id": chat.id,
        "name": chat.name,
        "chat_type": str(chat.chat_type),
        "participants": [user_data(u) for u in participants],
        "last_message": last,
        "unread_count": unread_count,
        "is_active": chat.is_active,
        "created_at": dt(chat.created_at),
    }


def chat_frame(msg: ChatMessage, sender: User) -> dict[str, Any]:
    """The seed's ChatConsumer frame."""
    return {
        "type": "message",
        "message": msg.content,
        "sender": sender.full_name,
        "sender_id": sender.id,
        "timestamp": dt(msg.created_at),
        "id": msg.id,
        "chat": msg.chat_id,
        "message_type": str(msg.message_type),
    }


def communication_data(comm: InternalCommunication, participant_ids: list[int]) -> dict[str, Any]:
    return {
        "id": comm.id,
        "request": comm.request_id,
        "from_department": comm.from_department,
        "to_department": comm.to_department,
        "subject": comm.subject,
        "content": comm.content,
        "priority": str(comm.priority),
        "status": str(comm.status),
        "sender": comm.sender_id,
        "participants": participant_ids,
        "created_at": dt(comm.created_at),
    }
