"""How the Telegram sender paces itself (telegram_delivery.sender): Telegram's limits, the
burst settings, and the timings tests shrink."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from telegram_delivery.budget import Rates


@dataclass
class SenderLimits:
    """How the sender paces itself. `from_settings` reads Telegram's limits and the burst
    settings; the rest are timings (tests shrink them by passing overrides)."""

    rates: Rates = field(default_factory=Rates)
    summary_after: int = 10  # TELEGRAM_SUMMARY_AFTER: pending new cards per group kept as cards
    cards_after_summary: bool = False  # TELEGRAM_CARDS_AFTER_SUMMARY
    # An edit (and the last burst summary) waits this long for newer changes to the same
    # message; None: one group message's share of the group budget, at most a second
    # (TELEGRAM_GROUP_RATE 20/60 -> 1 s; shrunk with the rate in tests and benchmarks).
    edit_delay: float | None = None
    lease_seconds: float = 60.0  # a `sending` row older than this is retried
    max_attempts: int = 8
    request_timeout: int = 20
    backoff_base: float = 0.5
    backoff_max: float = 60.0
    poll_interval: float = 0.5
    min_pass_interval: float = 0.01  # passes at most 100 a second
    poison_attempts: int = 3  # POISON_MAX_ATTEMPTS: tries of a row whose handling raises
    note_interval: float = 600.0  # at most one "delivery failed" note per request this often
    loop_backoff_base: float = 0.5  # the loop itself (database outage)
    loop_backoff_cap: float = 30.0

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> SenderLimits:
        values: dict[str, Any] = {
            "rates": Rates.from_settings(settings),
            "summary_after": settings.telegram_summary_after,
            "cards_after_summary": settings.telegram_cards_after_summary,
        }
        if getattr(settings, "poison_max_attempts", None):
            values["poison_attempts"] = int(settings.poison_max_attempts)
        values.update({k: v for k, v in overrides.items() if k in cls.__dataclass_fields__})
        return cls(**values)

    @property
    def edit_wait(self) -> float:
        if self.edit_delay is not None:
            return self.edit_delay
        return min(1.0, self.rates.group.window / self.rates.group.limit)

    @property
    def fold_interval(self) -> float:
        """How often a group's pending cards are checked for a burst."""
        return min(1.0, self.rates.group.window / 20)
