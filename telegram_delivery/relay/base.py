"""What every part of the relay shares: the admin group and its language, queueing one
Telegram call with its dedup key, the HTML helpers, and the postponement signal."""

from __future__ import annotations

from typing import Any

from db.models import RequestMessage
from telegram_delivery import cards
from telegram_delivery.contract import Delivery
from telegram_delivery.outbox import enqueue


class Postpone(Exception):
    """Stop this pass at the current event and try it again shortly."""


class RelayBase:
    """The relay's shared state and queueing; the event handlers are mixins on top of it
    (telegram_delivery.relay.requests, .messages, .edits) and the consumer loop
    (telegram_delivery.relay.consumer.Relay) puts them together."""

    settings: Any
    forum_chats: set[int]
    enqueued: int

    async def ensure_thread(self, request_id: int) -> None:
        """A card for the request in the admin group (telegram_delivery.relay.requests)."""
        raise NotImplementedError

    @property
    def group_lang(self) -> str:
        return cards.lang_of(getattr(self.settings, "language", "ru"))

    @property
    def admin_chat(self) -> int | None:
        return self.settings.telegram_admin_chat_id

    async def _enqueue(self, chat_id: int, method: str, payload: dict[str, Any], delivery: Delivery,
                       *, dedup_key: str, request_id: int | None = None, more: str | None = None,
                       priority: int | None = None) -> bool:
        created = await enqueue(chat_id, method, payload, delivery=delivery, dedup_key=dedup_key,
                                request_id=request_id, more=more, priority=priority)
        if created:
            self.enqueued += 1
        return created


def escape(value: str) -> str:
    import html

    return html.escape(value, quote=False)


def caption_of(msg: RequestMessage, head: str) -> str:
    """Caption for a copied media message: the header plus the original caption, if any
    (over 1,024 characters, `enqueue` sends it as text right after the copy)."""
    content = (msg.content or "").strip()
    if not content or content.startswith("[") and content.endswith("]"):
        return head
    return f"{head}\n{escape(content)}"
