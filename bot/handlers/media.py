"""Inbound media: what files a Telegram message carries, album buffering, and storing the
files as request attachments (core.attachments) within MAX_UPLOAD_MB."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import Message

from core import attachments
from core.requests import post_message
from core.settings import Settings
from db.models import Source, User


@dataclass(frozen=True)
class IncomingFile:
    file_id: str
    name: str
    size: int | None
    content_type: str | None


class FileTooBig(Exception):
    """A file is over the upload limit; nothing was stored."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def files_of(message: Message) -> list[IncomingFile]:
    """The files a message carries: the largest size of a photo, or a document/video/audio."""
    if message.photo:
        best = message.photo[-1]
        return [IncomingFile(best.file_id, f"photo_{best.file_unique_id}.jpg", best.file_size, "image/jpeg")]
    for media in (message.document, message.video, message.audio, message.voice, message.animation):
        if media is not None:
            name = getattr(media, "file_name", None) or f"{type(media).__name__.lower()}_{media.file_unique_id}"
            return [IncomingFile(media.file_id, name, media.file_size, getattr(media, "mime_type", None))]
    return []


def text_of(message: Message) -> str:
    return (message.text or message.caption or "").strip()


def has_content(message: Message) -> bool:
    return bool(text_of(message) or files_of(message))


class AlbumBuffer:
    """Collects the messages of one album (shared media_group_id; Telegram sends each part
    as its own update) so they are stored as one thread message with several files.

    The first part's handler waits until no new part has arrived for `quiet` seconds and
    gets the whole album; the handlers of later parts get None and do nothing.
    """

    def __init__(self, quiet: float = 1.0) -> None:
        self.quiet = quiet
        self._groups: dict[tuple[int, str], list[Message]] = {}

    async def collect(self, message: Message) -> list[Message] | None:
        if not message.media_group_id:
            return [message]
        key = (message.chat.id, message.media_group_id)
        group = self._groups.get(key)
        if group is not None:
            group.append(message)
            return None
        group = self._groups[key] = [message]
        seen = 0
        while seen != len(group):
            seen = len(group)
            await asyncio.sleep(self.quiet)
        del self._groups[key]
        return sorted(group, key=lambda m: m.message_id)


async def post_messages(
    bot: Bot,
    settings: Settings,
    actor: User,
    request_id: int,
    messages: list[Message],
    *,
    is_internal: bool = False,
) -> int | None:
    """Store Telegram message(s) (one message, or one album) in a request's thread.

    Text only: core.requests.post_message. With files: every file is checked against the
    size limit before anything is stored (FileTooBig), then downloaded into storage, and
    all of them are recorded as one thread message with the caption in one transaction
    (core.attachments.record_files), so staff are told of the whole album at once.
    Returns the RequestMessage id.
    """
    text = "\n".join(t for t in (text_of(m) for m in messages) if t)
    files = [f for m in messages for f in files_of(m)]
    if not files:
        if not text:
            return None
        msg = await post_message(actor, request_id, text, is_internal=is_internal, source=Source.telegram)
        return msg.id
    for f in files:
        if f.size is not None and f.size > settings.max_upload_bytes:
            raise FileTooBig(f.name)
    # Permission first, so nobody's files are downloaded for a request they cannot write to.
    await attachments.check_can_attach(actor, request_id, is_internal=is_internal)
    stored: list[attachments.StoredFile] = []
    try:
        for f in files:
            try:
                data = await bot.download(f.file_id)
            except TelegramBadRequest as exc:
                # Telegram's cloud Bot API refuses downloads over 20 MB ("file is too big").
                if "too big" in str(exc).lower():
                    raise FileTooBig(f.name) from None
                raise
            assert data is not None
            content = data.getvalue()
            if len(content) > settings.max_upload_bytes:
                raise FileTooBig(f.name)
            stored.append(await attachments.store_file(request_id, f.name, content, f.content_type))
        # One message with every file of the album, announced once (core.attachments).
        atts = await attachments.record_files(
            actor, request_id, stored, caption=text or None, is_internal=is_internal,
            source=Source.telegram,
        )
    except BaseException:
        for s in stored:
            attachments.remove_stored(s.stored_path)
        raise
    return atts[0].message_id
