"""Per-client rate limits (the public web form and replies).

A sliding window of `limit` hits per `window` seconds per key (the client's IP and the
action). In one process the window lives in memory; with REDIS_URL set it lives in Redis
(one sorted set per key, updated by one Lua script, so every API worker and replica
shares the same count and concurrent hits cannot both take the last slot).
"""

from __future__ import annotations

import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

DEFAULT_PREFIX = "helpdesk:ratelimit:"


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after: int  # whole seconds until a slot frees up (0 when allowed)
    remaining: int


class RateLimiter(Protocol):
    limit: int
    window: float

    async def hit(self, key: str) -> RateDecision: ...


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
        now = self.clock()
        if len(self._hits) > 10_000:
            self._sweep(now)
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            retry = max(1, math.ceil(hits[0] + self.window - now))
            return RateDecision(False, retry, 0)
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

    async def hit(self, key: str) -> RateDecision:
        now_ms = int(self.clock() * 1000)
        window_ms = int(self.window * 1000)
        allowed, wait_ms, remaining = await self._script(
            keys=[self.prefix + key],
            args=[now_ms, window_ms, self.limit, f"{now_ms}:{uuid.uuid4().hex}"],
        )
        if int(allowed):
            return RateDecision(True, 0, int(remaining))
        return RateDecision(False, max(1, math.ceil(int(wait_ms) / 1000)), 0)


def build_rate_limiter(
    limit_per_min: int, redis: Any = None, prefix: str = DEFAULT_PREFIX
) -> RateLimiter:
    """Redis-backed when a Redis client is given (several processes), in-memory otherwise."""
    if redis is not None:
        return RedisRateLimiter(redis, limit_per_min, prefix=prefix)
    return MemoryRateLimiter(limit_per_min)
