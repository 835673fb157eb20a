"""Sliding-window rate limits for abuse control (docs/deploy.md, "Abuse limits").

A sliding window of `limit` hits per `window` seconds per key: the web form and replies per
client address, bot customers per Telegram user (messages per minute, new requests per
hour), public WebSocket resumes per access key. In one process the window lives in memory;
with REDIS_URL set it lives in Redis (one sorted set per key, updated by one Lua script, so
every API worker, bot process and replica shares the same count and concurrent hits cannot
both take the last slot).

Losing Redis does not fail the request: the limiter counts in this process until Redis
answers again (one log line per state change), so the limit holds per process meanwhile.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

DEFAULT_PREFIX = "helpdesk:ratelimit:"

log = logging.getLogger("helpdesk.ratelimit")


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after: int  # whole seconds until a slot frees up (0 when allowed)
    remaining: int


class RateLimiter(Protocol):
    limit: int
    window: float

    async def hit(self, key: str) -> RateDecision: ...

    async def peek(self, key: str) -> RateDecision: ...


class MemoryRateLimiter:
    """Sliding window in this process. `clock` is injectable so tests never sleep."""

    def __init__(
        self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}

    def _sweep(self, now: float) -> None:
        # Keep memory bounded: forget clients whose window has emptied.
        for key in [k for k, q in self._hits.items() if not q or q[-1] <= now - self.window]:
            del self._hits[key]

    async def hit(self, key: str) -> RateDecision:
        return self._take(key, record=True)

    async def peek(self, key: str) -> RateDecision:
        """Would a hit now be allowed? Records nothing."""
        return self._take(key, record=False)

    def _take(self, key: str, record: bool) -> RateDecision:
        now = self.clock()
        if len(self._hits) > 10_000:
            self._sweep(now)
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            retry = max(1, math.ceil(hits[0] + self.window - now))
            return RateDecision(False, retry, 0)
        if not record:
            if not hits:
                del self._hits[key]
            return RateDecision(True, 0, self.limit - len(hits))
        hits.append(now)
        return RateDecision(True, 0, self.limit - len(hits))


_SLIDING_WINDOW_LUA = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if count < limit then
  if ARGV[5] == '0' then
    return {1, 0, limit - count}
  end
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('PEXPIRE', key, window)
  return {1, 0, limit - count - 1}
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now, 0}
"""


class RedisRateLimiter:
    """Sliding window shared by every process through Redis (times in milliseconds)."""

    def __init__(
        self,
        redis: Any,
        limit: int,
        window: float = 60.0,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.limit = limit
        self.window = window
        self.prefix = prefix
        self.clock = clock
        self._script = redis.register_script(_SLIDING_WINDOW_LUA)
        # Counts here while Redis is unreachable (same limit, this process only).
        self._fallback = MemoryRateLimiter(limit, window)
        self._redis_down = False

    async def hit(self, key: str) -> RateDecision:
        return await self._take(key, record=True)

    async def peek(self, key: str) -> RateDecision:
        """Would a hit now be allowed? Records nothing."""
        return await self._take(key, record=False)

    async def _take(self, key: str, record: bool) -> RateDecision:
        now_ms = int(self.clock() * 1000)
        window_ms = int(self.window * 1000)
        try:
            allowed, wait_ms, remaining = await self._script(
                keys=[self.prefix + key],
                args=[
                    now_ms, window_ms, self.limit, f"{now_ms}:{uuid.uuid4().hex}",
                    "1" if record else "0",
                ],
            )
        except _redis_errors() as exc:
            if not self._redis_down:
                self._redis_down = True
                log.warning("rate limit: Redis unreachable (%s); counting in this process", exc)
            return await (self._fallback.hit(key) if record else self._fallback.peek(key))
        if self._redis_down:
            self._redis_down = False
            log.warning("rate limit: Redis is back; counting shared again")
        if int(allowed):
            return RateDecision(True, 0, int(remaining))
        return RateDecision(False, max(1, math.ceil(int(wait_ms) / 1000)), 0)


def _redis_errors() -> tuple[type[Exception], ...]:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (OSError, TimeoutError, RedisConnectionError, RedisTimeoutError)


def build_rate_limiter(
    limit: int, redis: Any = None, prefix: str = DEFAULT_PREFIX, window: float = 60.0
) -> RateLimiter:
    """`limit` hits per `window` seconds (a minute by default): Redis-backed when a Redis
    client is given (several processes), in-memory otherwise."""
    if redis is not None:
        return RedisRateLimiter(redis, limit, window, prefix=prefix)
    return MemoryRateLimiter(limit, window)
