"""Telegram's sending budget: how many calls the bot may make now, per chat and overall.

Telegram allows a bot about 30 messages a second overall, one a second per private chat and
20 a minute per group (edits, topic changes and files count like messages); beyond that it
answers 429 with `retry_after`, sometimes for hours. The limits are settings
(TELEGRAM_GROUP_RATE, TELEGRAM_PRIVATE_RATE, TELEGRAM_GLOBAL_RATE, `N/S`).

Guarantees:
- Sliding windows: at most `limit` calls in any `window` seconds per chat, and at most the
  global limit in any of its windows (stricter than a token bucket, which lets twice the
  limit through a window boundary). A call takes a slot in its chat's window and in the
  global one at once, or in neither.
- Shared: with REDIS_URL every bot, webhook and scheduler process of the deployment takes
  its slots from the same windows (one sorted set per chat and one global, per bot, updated
  by one Lua script that reads Redis's own clock, so concurrent takers cannot both get the
  last slot and the hosts' clocks do not matter). Without Redis the windows live in this
  process.
- The sender peeks (`wait_time`) before it claims a row and takes the slot (`take`) right
  before the HTTP call, after preparing it: the time between the slot and Telegram seeing
  the call stays a few milliseconds, and a row that needs no call costs no slot. A slot
  taken for a call that is then not made is given back (`refund`).
- Direct answers to a person (command replies, prompts) are never delayed by the budget:
  `record` counts them even over the limit, so the outbox's sender, which waits for a free
  slot, leaves the room they used. That is the budget order's first place.
- Losing Redis does not stop delivery: the budget counts in this process until Redis
  answers again (one log line per state change).

`guard`: each window is kept a little longer than Telegram's (2%, at most 0.25 s), so
network jitter between our clock and Telegram's never turns a full window into a 429.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("helpdesk.telegram_delivery.budget")

DEFAULT_PREFIX = "helpdesk:ratelimit:"


@dataclass(frozen=True)
class Rate:
    """`limit` calls per `window` seconds."""

    limit: int
    window: float

    @property
    def guarded(self) -> float:
        return self.window + min(0.25, 0.02 * self.window)

    def __str__(self) -> str:
        return f"{self.limit}/{self.window:g}"


@dataclass(frozen=True)
class Rates:
    group: Rate = Rate(20, 60.0)
    private: Rate = Rate(1, 1.0)
    global_: Rate = Rate(30, 1.0)

    @classmethod
    def from_settings(cls, settings: Any) -> Rates:
        return cls(
            group=Rate(*settings.telegram_group_rate),
            private=Rate(*settings.telegram_private_rate),
            global_=Rate(*settings.telegram_global_rate),
        )

    def of(self, chat_id: int) -> Rate:
        """Groups and channels have negative ids, users positive ones."""
        return self.group if chat_id < 0 else self.private


@dataclass(frozen=True)
class Grant:
    """A slot taken for one call to `chat_id` (given back with `refund`)."""

    chat_id: int
    member: str
    shared: bool


class MemoryBudget:
    """The windows in this process."""

    def __init__(self, rates: Rates, clock: Any = time.monotonic) -> None:
        self.rates = rates
        self.clock = clock
        self._chats: dict[int, deque[tuple[float, str]]] = {}
        self._global: deque[tuple[float, str]] = deque()

    def _trim(self, hits: deque[tuple[float, str]], rate: Rate, now: float) -> None:
        while hits and hits[0][0] <= now - rate.guarded:
            hits.popleft()

    def _wait(self, hits: deque[tuple[float, str]], rate: Rate, now: float) -> float:
        self._trim(hits, rate, now)
        if len(hits) < rate.limit:
            return 0.0
        # The slot frees when the hit `limit` places from the end leaves the window.
        return max(0.001, hits[len(hits) - rate.limit][0] + rate.guarded - now)

    async def wait_time(self, chat_id: int) -> float:
        """Seconds until a call to `chat_id` would get a slot (0: now). Takes nothing."""
        now = self.clock()
        chat = self._chats.get(chat_id) or deque()
        return max(self._wait(chat, self.rates.of(chat_id), now),
                   self._wait(self._global, self.rates.global_, now))

    async def take(self, chat_id: int) -> tuple[Grant | None, float]:
        return self.take_now(chat_id)

    def take_now(self, chat_id: int, *, force: bool = False) -> tuple[Grant | None, float]:
        now = self.clock()
        if len(self._chats) > 20_000:
            self._chats = {k: q for k, q in self._chats.items() if q and q[-1][0] > now - 3600}
        chat = self._chats.setdefault(chat_id, deque())
        if not force:
            wait = max(self._wait(chat, self.rates.of(chat_id), now),
                       self._wait(self._global, self.rates.global_, now))
            if wait > 0:
                return None, wait
        member = uuid.uuid4().hex
        chat.append((now, member))
        self._global.append((now, member))
        return Grant(chat_id, member, shared=False), 0.0

    async def record(self, chat_id: int) -> None:
        self.take_now(chat_id, force=True)

    async def refund(self, grant: Grant) -> None:
        for hits in (self._chats.get(grant.chat_id), self._global):
            if hits is None:
                continue
            for item in hits:
                if item[1] == grant.member:
                    hits.remove(item)
                    break


_TAKE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
for i = 1, 2 do
  local window = tonumber(ARGV[2 * i - 1])
  local limit = tonumber(ARGV[2 * i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local count = redis.call('ZCARD', KEYS[i])
  if count >= limit then
    local slot = redis.call('ZRANGE', KEYS[i], count - limit, count - limit, 'WITHSCORES')
    local free = tonumber(slot[2]) + window - now
    if free > wait then wait = free end
  end
end
if ARGV[6] == 'peek' or (ARGV[6] ~= 'force' and wait > 0) then
  return wait
end
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], now, ARGV[5])
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2 * i - 1]) + 1000)
end
return 0
"""


class RedisBudget:
    """The windows in Redis, shared by every process with the same `prefix` and bot."""

    def __init__(self, redis: Any, rates: Rates, *, bot_id: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = redis
        self.rates = rates
        self.prefix = f"{prefix}tg:{bot_id}:"
        self._script = redis.register_script(_TAKE_LUA)
        self._fallback = MemoryBudget(rates)
        self._redis_down = False

    def _keys(self, chat_id: int) -> list[str]:
        return [f"{self.prefix}chat:{chat_id}", f"{self.prefix}global"]

    def _args(self, chat_id: int, member: str, mode: str) -> list[Any]:
        chat, glob = self.rates.of(chat_id), self.rates.global_
        return [int(chat.guarded * 1000), chat.limit, int(glob.guarded * 1000), glob.limit,
                member, mode]

    async def _run(self, chat_id: int, force: bool, peek: bool = False) -> tuple[Grant | None, float]:
        member = f"{uuid.uuid4().hex}"
        mode = "peek" if peek else "force" if force else "take"
        try:
            wait_ms = await self._script(keys=self._keys(chat_id), args=self._args(chat_id, member, mode))
        except _redis_errors() as exc:
            if not self._redis_down:
                self._redis_down = True
                log.warning("telegram budget: Redis unreachable (%s); counting in this process", exc)
            if peek:
                return None, await self._fallback.wait_time(chat_id)
            return self._fallback.take_now(chat_id, force=force)
        if self._redis_down:
            self._redis_down = False
            log.warning("telegram budget: Redis is back; counting shared again")
        wait = int(wait_ms) / 1000
        if wait > 0:
            return None, max(0.001, wait)
        if peek:
            return None, 0.0
        return Grant(chat_id, member, shared=True), 0.0

    async def wait_time(self, chat_id: int) -> float:
        """Seconds until a call to `chat_id` would get a slot (0: now). Takes nothing."""
        return (await self._run(chat_id, False, peek=True))[1]

    async def take(self, chat_id: int) -> tuple[Grant | None, float]:
        return await self._run(chat_id, False)

    async def record(self, chat_id: int) -> None:
        await self._run(chat_id, True)

    async def refund(self, grant: Grant) -> None:
        if not grant.shared:
            await self._fallback.refund(grant)
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            for key in self._keys(grant.chat_id):
                pipe.zrem(key, grant.member)
            await pipe.execute()
        except _redis_errors():
            pass  # the slot expires with its window


def _redis_errors() -> tuple[type[Exception], ...]:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (OSError, TimeoutError, RedisConnectionError, RedisTimeoutError)


Budget = MemoryBudget | RedisBudget


def build_budget(settings: Any, redis: Any = None) -> Budget:
    """The budget for `settings`: in Redis when a client is given (or REDIS_URL is set and
    `redis` is None: a client is made), in this process otherwise."""
    rates = Rates.from_settings(settings)
    if redis is None and getattr(settings, "redis_url", None):
        from redis.asyncio import Redis

        redis = Redis.from_url(settings.redis_url)
    if redis is None:
        return MemoryBudget(rates)
    token = settings.telegram_bot_token or ""
    bot_id = token.partition(":")[0] or "bot"
    prefix = str((getattr(settings, "extra", None) or {}).get("ratelimit_prefix", DEFAULT_PREFIX))
    return RedisBudget(redis, rates, bot_id=bot_id, prefix=prefix)


# Bot API methods that put something into a chat (count against its limit).
CHAT_WRITES = frozenset({
    "SendMessage", "SendPhoto", "SendDocument", "SendVideo", "SendAudio", "SendVoice",
    "SendAnimation", "SendSticker", "SendMediaGroup", "SendLocation", "SendContact", "SendPoll",
    "CopyMessage", "ForwardMessage", "EditMessageText", "EditMessageCaption",
    "EditMessageReplyMarkup", "EditMessageMedia", "CreateForumTopic", "EditForumTopic",
    "CloseForumTopic", "ReopenForumTopic",
})


def counting_middleware(budget: Budget) -> Any:
    """An aiogram request middleware for the bot that answers people directly: every call
    that writes into a chat is recorded in the budget (never delayed by it)."""

    async def count(make_request: Any, bot: Any, method: Any) -> Any:
        chat_id = getattr(method, "chat_id", None)
        if type(method).__name__ in CHAT_WRITES and isinstance(chat_id, int):
            try:
                await budget.record(chat_id)
            except Exception as exc:  # counting must never cost the reply
                log.debug("telegram budget: not recorded: %s", exc)
        return await make_request(bot, method)

    return count
