"""The sender's counters (per Sender, and `STATS` for every sender in this process) and the
delivery queue's depth, for metrics (telegram_delivery.metrics, bench/telegram_bench.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from db.models import TelegramOutbox
from telegram_delivery.outbox import Priority


@dataclass
class SenderStats:
    """Counters of one sender, and (`STATS`) of every sender in this process: plain
    integers for a metrics endpoint to read (`stats_snapshot()`)."""

    sent: int = 0
    retried_429: int = 0
    retried_errors: int = 0
    failed: int = 0
    folded: int = 0  # new-request cards folded into summaries
    summaries: int = 0  # summaries queued
    coalesced: int = 0  # edits that cost no call: superseded by a newer one, or unchanged
    sent_by_class: dict[int, int] = field(default_factory=dict)

    @property
    def merged(self) -> int:  # the older name of `folded`
        return self.folded


STATS = SenderStats()


def stats_snapshot() -> dict[str, int]:
    """This process's delivery counters since start (every Sender together), for metrics:
    `sent`, `failed`, `retried_429`, `retried_errors`, `folded`, `summaries`, `coalesced`
    and `sent_class_<n>` per budget class."""
    out = {
        "sent": STATS.sent, "failed": STATS.failed, "retried_429": STATS.retried_429,
        "retried_errors": STATS.retried_errors, "folded": STATS.folded,
        "summaries": STATS.summaries, "coalesced": STATS.coalesced,
    }
    for cls in Priority:
        out[f"sent_class_{int(cls)}"] = STATS.sent_by_class.get(int(cls), 0)
    return out


async def queue_depth() -> dict[str, int]:
    """The delivery queue as the database holds it (every process's rows): `pending` and
    `sending` rows, and `failed` rows waiting for `helpdesk parked --retry`."""
    from tortoise.functions import Count

    rows = await TelegramOutbox.filter(status__in=("pending", "sending", "failed")).group_by(
        "status"
    ).annotate(n=Count("id")).values("status", "n")
    out = {"pending": 0, "sending": 0, "failed": 0}
    for r in rows:
        out[str(r["status"])] = int(r["n"])
    return out
