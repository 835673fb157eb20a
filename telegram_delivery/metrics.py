"""The Telegram sender's in-memory counters (telegram_delivery.sender_stats.SenderStats), mirrored to
Prometheus (`helpdesk_telegram_calls_total{outcome}`) as they are counted.

`metered_stats()` is a drop-in SenderStats: every `stats.sent += 1` in the sender also
counts in the metric, so telegram_delivery/sender.py needs no change beyond using it.
"""

from __future__ import annotations

from typing import Any

from core import metrics
from telegram_delivery.sender_stats import SenderStats

OUTCOMES = {
    "sent": "sent",
    "retried_429": "retry_429",
    "retried_errors": "retry_error",
    "failed": "failed",
    "folded": "merged",  # new-request cards folded into burst summaries
    "summaries": "summary",
}


class MeteredSenderStats(SenderStats):
    def __setattr__(self, name: str, value: Any) -> None:
        outcome = OUTCOMES.get(name)
        if outcome is not None and isinstance(value, int):
            before = getattr(self, name, None)
            if isinstance(before, int) and value > before:
                metrics.telegram_call(outcome, value - before)
        object.__setattr__(self, name, value)


def metered_stats() -> SenderStats:
    return MeteredSenderStats()
