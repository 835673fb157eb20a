"""The typed contract between those who queue Telegram calls (the relay, the scheduler, the
sender's own follow-ups) and the sender that makes them.

A queued row is a Bot API method, its parameters, and a `Delivery`: what the sender must do
around the call (render the card at send time, put the message into a request's thread,
record the copy it sent, upload a file, draw a chart...). The row stores the `Delivery` as
JSON under the payload's `_meta` key, the shape rows had before this contract, so rows
queued by an older version are still delivered; nothing outside this module reads or
writes that key.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

META_KEY = "_meta"


class Kind(StrEnum):
    """What a row is; it decides its budget class (outbox.Priority) and how it is prepared."""

    CARD = "card"  # a new request's card in the admin group
    CARD_EDIT = "card_edit"
    TOPIC = "topic"  # a request's forum topic
    TOPIC_EDIT = "topic_edit"  # its name
    TOPIC_STATE = "topic_state"  # closed or reopened
    THREAD = "thread"  # a thread message copied into the admin group
    CUSTOMER = "customer"  # a thread message sent to the customer
    NOTIFY = "notify"  # a status notice to the customer
    CHAT = "chat"  # the admin chat bridge
    SUMMARY = "summary"  # a burst summary listing several new requests
    SUMMARY_EDIT = "summary_edit"
    COPY_CHANGE = "copy_change"  # an edit or deletion of a copy the bot sent
    DIGEST_CHART = "digest_chart"


@dataclass(frozen=True, slots=True)
class MessageLink:
    """The TelegramMessageLink to record for each message the call sends."""

    request_id: int | None = None
    request_message_id: int | None = None
    chat_message_id: int | None = None
    kind: str = ""  # "text" | "caption" | "media"
    part: int | None = None  # which part of a split text (set by outbox.enqueue)
    version: str = ""  # content_version() of the text the copy was rendered from


def content_version(content: str | None) -> str:
    """A short fingerprint of a thread message's text: a copy sent from an older text is
    edited once it is sent (telegram_delivery.outcomes)."""
    return hashlib.sha1((content or "").encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class CopyTarget:
    """The copy an edit or deletion changes; pending changes of one copy collapse."""

    chat_id: int
    message_id: int


@dataclass(frozen=True, slots=True)
class Upload:
    """A stored file sent as the method's `field` ("document" or "photo")."""

    field: str
    path: str
    name: str


@dataclass(frozen=True, slots=True)
class Chart:
    """The per-day chart (core.charts) drawn at send time and sent as the `photo`."""

    days: list[Any]
    lang: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the sender does around one queued call (every field optional)."""

    kind: Kind | None = None
    request_id: int | None = None  # the request the row belongs to
    thread_of: int | None = None  # send into this request's thread (topic or card reply)
    render_card: bool = False  # render the request card from the database at send time
    mergeable: bool = False  # a new-request card a burst may fold into a summary
    link: MessageLink | None = None
    target: CopyTarget | None = None
    upload: Upload | None = None
    requests: tuple[int, ...] = field(default=())  # (summary) the requests it lists
    summary: int | None = None  # (summary_edit) the summary's message id
    chart: Chart | None = None

    def with_link(self, **changes: Any) -> Delivery:
        """This delivery with its message link changed (no link: unchanged)."""
        if self.link is None:
            return self
        return replace(self, link=replace(self.link, **changes))

    def to_json(self) -> dict[str, Any]:
        """The stored form: only the fields that are set."""
        out: dict[str, Any] = {}
        for name, value in asdict(self).items():
            if value in (None, False, (), ""):
                continue
            if name == "kind":
                value = str(value)
            elif name == "requests":
                value = list(value)
            elif isinstance(value, dict):
                value = {k: v for k, v in value.items() if v not in (None, "")}
            out[name] = value
        return out

    @classmethod
    def from_json(cls, data: Any) -> Delivery:
        """The stored form read back; unknown keys and kinds are ignored (older rows)."""
        if not isinstance(data, dict):
            return cls()
        kind = data.get("kind")
        link, target, upload, chart = (data.get(k) for k in ("link", "target", "upload", "chart"))
        return cls(
            kind=Kind(kind) if kind in Kind._value2member_map_ else None,
            request_id=_int(data.get("request_id")),
            thread_of=_int(data.get("thread_of")),
            render_card=bool(data.get("render_card")),
            mergeable=bool(data.get("mergeable")),
            link=MessageLink(
                request_id=_int(link.get("request_id")),
                request_message_id=_int(link.get("request_message_id")),
                chat_message_id=_int(link.get("chat_message_id")),
                kind=str(link.get("kind") or ""),
                part=_int(link.get("part")),
                version=str(link.get("version") or ""),
            ) if isinstance(link, dict) else None,
            target=CopyTarget(int(target["chat_id"]), int(target["message_id"]))
            if isinstance(target, dict) else None,
            upload=Upload(str(upload["field"]), str(upload["path"]), str(upload["name"]))
            if isinstance(upload, dict) else None,
            requests=tuple(int(r) for r in data.get("requests") or ()),
            summary=_int(data.get("summary")),
            chart=Chart(list(chart.get("days") or []), str(chart.get("lang") or ""))
            if isinstance(chart, dict) else None,
        )


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None


def pack(params: dict[str, Any], delivery: Delivery | None) -> dict[str, Any]:
    """The row's stored payload: the method's parameters and the delivery."""
    if META_KEY in params:
        raise ValueError(f"pass the delivery as a Delivery, not as a {META_KEY!r} parameter")
    payload = dict(params)
    stored = delivery.to_json() if delivery is not None else {}
    if stored:
        payload[META_KEY] = stored
    return payload


def unpack(payload: dict[str, Any] | None) -> tuple[dict[str, Any], Delivery]:
    """A stored payload split into the method's parameters and its delivery."""
    params = dict(payload or {})
    return params, Delivery.from_json(params.pop(META_KEY, None))


def delivery_of(payload: dict[str, Any] | None) -> Delivery:
    """The delivery of a stored payload (its parameters untouched)."""
    return Delivery.from_json((payload or {}).get(META_KEY))
