"""Time for the scheduler: one place that says "now", and the arithmetic of fire slots.

Job functions take `now` as an argument, so tests call them with any time they choose and
never wait for real minutes; the runtime passes `clock.now()`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from core.clock import as_utc


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """The real clock (timezone-aware UTC)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to (tests)."""

    def __init__(self, at: datetime) -> None:
        self._at = as_utc(at)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = as_utc(at)

    def advance(self, **delta: float) -> datetime:
        self._at += timedelta(**delta)
        return self._at


def slot_iso(slot: datetime) -> str:
    """The canonical text of a fire slot: UTC, whole seconds, sortable as a string."""
    return as_utc(slot).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_slot_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def floor_minute(value: datetime) -> datetime:
    return as_utc(value).replace(second=0, microsecond=0)


def next_fire_time(trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The trigger's first fire time at or after `now` (UTC)."""
    nxt = trigger.get_next_fire_time(None, as_utc(now))
    return as_utc(nxt) if nxt else None


def last_fire_time(trigger: BaseTrigger, now: datetime, lookback: timedelta) -> datetime | None:
    """The trigger's latest fire time in (now - lookback, now], or None."""
    now = as_utc(now)
    t = trigger.get_next_fire_time(None, now - lookback)
    last = None
    steps = 0
    while t is not None and as_utc(t) <= now and steps < 10_000:
        last = as_utc(t)
        t = trigger.get_next_fire_time(t, t + timedelta(seconds=1))
        steps += 1
    return last


def _crontab_weekdays(field: str) -> str:
    # crontab counts weekdays from Sunday (0 or 7); APScheduler 3 from Monday (0). Numeric
    # items become explicit APScheduler numbers; names (mon-fri) mean the same in both.
    if field in ("*", "?"):
        return field
    out: list[str] = []
    for item in field.split(","):
        base, slash, step_text = item.partition("/")
        step = int(step_text) if slash and step_text.isdigit() else 1
        if base == "*":
            lo, hi = 0, 6
        elif "-" in base:
            a, _, b = base.partition("-")
            if not (a.isdigit() and b.isdigit()):
                out.append(item)
                continue
            lo, hi = int(a), int(b)
        elif base.isdigit():
            lo = int(base)
            hi = 7 if slash else lo
        else:
            out.append(item)
            continue
        if not (0 <= lo <= 7 and 0 <= hi <= 7):
            raise ValueError(f"day of week out of range in {field!r}")
        out += [str((d - 1) % 7) for d in range(lo, hi + 1, step)]
    return ",".join(dict.fromkeys(out))


def cron_trigger(expr: str, tz: str) -> CronTrigger:
    """A CronTrigger for a standard 5-field crontab expression in time zone `tz`.

    Unlike APScheduler 3's `CronTrigger.from_crontab`, weekday numbers mean what they mean
    in crontab (0 and 7 are Sunday, 1-5 is Monday to Friday). ValueError if invalid.
    """
    values = expr.split()
    if len(values) != 5:
        raise ValueError(f"expected 5 fields, got {len(values)}")
    values[4] = _crontab_weekdays(values[4])
    return CronTrigger.from_crontab(" ".join(values), timezone=tz)
