"""The sender: posts webhook deliveries (db.models.WebhookDelivery) to their subscriptions.

Guarantees and how:
- Order per subscription: a subscription's deliveries go out one at a time in id order,
  and delivery N+1 is not sent before N was delivered or given up. One sender (of any
  process) holds a subscription at a time: a lease on its row (`lease_holder`,
  `lease_until`, taken with a conditional UPDATE, renewed every few seconds while it
  works, given back when it stops). Subscriptions are served concurrently
  (`concurrency` per process).
- No double send between processes: besides the subscription's lease, each delivery is
  claimed (`pending -> sending`) before it is posted. Rows a holder left `sending` (it
  died) go back to `pending` when the next holder takes the subscription over, after
  the lease ran out: at-least-once. The window for a duplicate is a crash between the
  receiver's 2xx and our `delivered` commit; receivers dedupe by X-Helpdesk-Delivery.
- Retries: a non-2xx answer, a timeout (WEBHOOK_TIMEOUT, 10 s) or a network error is
  retried after 10 s, 20 s, 40 s ... capped at an hour (+-10% jitter) until 24 hours
  (WEBHOOK_RETRY_HOURS) after the event, then the delivery is `failed` and the next one
  goes. State is in the database, so retries survive restarts.
- Targets: the URL is checked again at every send; names are resolved through
  `core.targets.guarded_resolver`, so loopback/private addresses are refused at connect
  time unless WEBHOOK_ALLOW_PRIVATE=1. Redirects are not followed (3xx is a failure).
- Outcomes are written in small group commits (`_Recorder`, every ~20 ms, one
  transaction): a receiver's 2xx lets the next delivery go at once, and the database
  commits once per group instead of once per delivery (SQLite syncs the disk on each
  commit: that was the bottleneck, ~300 deliveries/s). A holder gives a subscription's
  lease back only after its outcomes are committed. So the at-least-once window is the
  time from a 2xx to its group's commit (tens of milliseconds).
- Outages: the loop backs off through `core.backoff.LoopHealth`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from tortoise import connections
from tortoise.expressions import Q
from tortoise.functions import Min

from core import metrics
from core.backoff import LoopHealth, LoopWorker, is_outage
from core.targets import TargetRefused, check_target, guarded_resolver
from core.webhooks import ATTEMPT_LOG_MAX, RetryPolicy, headers_for
from db.models import WebhookDelivery, WebhookSubscription

log = logging.getLogger("helpdesk.webhooks.sender")

ACTIVE = ("pending", "sending")
RESPONSE_SNIPPET = 300  # bytes of a refusing receiver's answer kept in the log


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class SenderStats:
    delivered: int = 0
    failed_attempts: int = 0
    given_up: int = 0


_OUTCOME_COLUMNS = ("status", "attempts", "last_status_code", "last_error", "attempt_log",
                    "delivered_at", "next_attempt_at")


async def _write_outcomes(rows: list[tuple[int, dict[str, Any]]]) -> None:
    """One statement executed for many rows, in one transaction (Tortoise's
    `execute_many`): a group of outcomes costs one commit and no per-row query building.
    Only rows still `sending` (claimed by this sender) are changed."""
    conn = connections.get("default")
    postgres = conn.capabilities.dialect == "postgres"
    if postgres:
        sets = ", ".join(f"{c} = ${n}" for n, c in enumerate(_OUTCOME_COLUMNS, start=1))
        sql = (f"UPDATE webhook_deliveries SET {sets} WHERE id = ${len(_OUTCOME_COLUMNS) + 1}"
               " AND status = 'sending'")
    else:
        sets = ", ".join(f"{c} = ?" for c in _OUTCOME_COLUMNS)
        sql = f"UPDATE webhook_deliveries SET {sets} WHERE id = ? AND status = 'sending'"

    def when(value: datetime | None) -> Any:
        # SQLite: the text form Tortoise itself stores, so ORM reads and comparisons agree.
        return value if value is None or postgres else str(value)

    values = [
        [f["status"], f["attempts"], f["last_status_code"], f["last_error"],
         orjson.dumps(f["attempt_log"]).decode(), when(f.get("delivered_at")),
         when(f.get("next_attempt_at")), row_id]
        for row_id, f in rows
    ]
    await conn.execute_many(sql, values)


class _Recorder:
    """Writes delivery outcomes in group commits. `record()` returns a future that is
    done once the outcome is committed (or failed: then it carries the error)."""

    def __init__(self, interval: float = 0.02, max_group: int = 500) -> None:
        self.interval = interval
        self.max_group = max_group
        self._pending: list[tuple[int, dict[str, Any], asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    def record(self, row_id: int, fields: dict[str, Any]) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row_id, fields, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_soon(), name="webhook-recorder")
        return future

    async def _flush_soon(self) -> None:
        while self._pending:
            await asyncio.sleep(self.interval)
            group, self._pending = self._pending[: self.max_group], self._pending[self.max_group:]
            try:
                await _write_outcomes([(row_id, fields) for row_id, fields, _ in group])
            except Exception as exc:
                log.warning("webhook outcomes of %d deliveries not written: %s", len(group), exc)
                for *_, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for *_, future in group:
                if not future.done():
                    future.set_result(None)


class WebhookSender(LoopWorker):
    task_name = "webhook-sender"

    """One sender loop per process; any number of processes may run one."""

    def __init__(
        self,
        settings: Any,
        *,
        holder: str | None = None,
        concurrency: int = 16,
        lease_seconds: float = 30.0,
        renew_every: float = 5.0,
        poll_interval: float = 1.0,
        batch: int = 50,
    ) -> None:
        extra = settings.extra or {}
        self.policy = RetryPolicy.from_settings(settings)
        self.timeout = float(extra.get("webhook_timeout", settings.webhook_timeout))
        self.allow_private = bool(settings.webhook_allow_private)
        self.holder = holder or f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.concurrency = concurrency
        # The lease must outlive the longest attempt plus a renewal interval, or another
        # process could take the subscription over while a slow receiver is still answering.
        self.lease_seconds = max(float(extra.get("webhook_lease", lease_seconds)),
                                 2 * self.timeout + renew_every)
        self.renew_every = min(renew_every, self.lease_seconds / 3)
        self.poll_interval = float(extra.get("webhook_poll", poll_interval))
        self.batch = batch
        self.stats = SenderStats()
        self.health = LoopHealth("webhook sender", log)
        self._running: dict[int, asyncio.Task[None]] = {}
        self._unwritten: dict[int, list[asyncio.Future[None]]] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._session: Any = None
        self._recorder = _Recorder(float(extra.get("webhook_group_commit", 0.02)))

    # --- lifecycle ----------------------------------------------------------------------
    async def _after_stop(self) -> None:
        """Deliveries in flight finish (bounded by the timeout), so the subscriptions'
        leases are given back; then the HTTP session closes."""
        tasks = list(self._running.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.timeout + 2)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()
            self._session = None

    async def _pass(self) -> float:
        return max(0.01, await self.pass_once())

    def _http(self) -> Any:
        if self._session is None:
            import aiohttp

            connector = aiohttp.TCPConnector(
                resolver=guarded_resolver(self.allow_private), limit=self.concurrency * 2,
                ttl_dns_cache=60,
            )
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    # --- one pass -----------------------------------------------------------------------
    async def pass_once(self) -> float:
        """Start a worker for every subscription whose next delivery is due and that no
        sender holds. Returns seconds until the next pass is useful."""
        next_in = self.poll_interval
        active = await WebhookSubscription.filter(is_active=True).values_list("id", flat=True)
        if not active:
            return next_in
        heads = (
            await WebhookDelivery.filter(status__in=ACTIVE, subscription_id__in=list(active))
            .annotate(first=Min("id"))
            .group_by("subscription_id")
            .values("subscription_id", "first")
        )
        if not heads:
            return next_in
        rows = {
            r.id: r
            for r in await WebhookDelivery.filter(id__in=[h["first"] for h in heads]).only(
                "id", "subscription_id", "status", "next_attempt_at"
            )
        }
        now = utcnow()
        for head in sorted(heads, key=lambda h: h["first"]):
            sid = head["subscription_id"]
            row = rows.get(head["first"])
            if row is None or sid in self._running:
                continue
            if len(self._running) >= self.concurrency:
                break
            if row.status == "pending" and row.next_attempt_at and row.next_attempt_at > now:
                next_in = min(next_in, (row.next_attempt_at - now).total_seconds())
                continue
            if await self._take(sid):
                task = asyncio.create_task(self._serve(sid), name=f"webhook-sub-{sid}")
                self._running[sid] = task
                task.add_done_callback(lambda _t, sid=sid: self._running.pop(sid, None))
        return next_in

    async def _take(self, subscription_id: int) -> bool:
        """Win the subscription's lease (free, expired, or already ours)."""
        now = utcnow()
        won = await WebhookSubscription.filter(
            Q(lease_until__isnull=True) | Q(lease_until__lt=now) | Q(lease_holder=self.holder),
            id=subscription_id, is_active=True,
        ).update(lease_holder=self.holder, lease_until=now + timedelta(seconds=self.lease_seconds))
        return bool(won)

    async def _renew(self, subscription_id: int) -> bool:
        """Keep the lease; False when it was lost (expired and taken over, subscription
        deactivated or deleted): stop sending for it."""
        won = await WebhookSubscription.filter(
            id=subscription_id, lease_holder=self.holder, is_active=True
        ).update(lease_until=utcnow() + timedelta(seconds=self.lease_seconds))
        return bool(won)

    async def _release(self, subscription_id: int) -> None:
        with contextlib.suppress(Exception):
            await WebhookSubscription.filter(id=subscription_id, lease_holder=self.holder).update(
                lease_holder=None, lease_until=None
            )

    async def _serve(self, subscription_id: int) -> None:
        """Send the subscription's due deliveries in order until none is left, one waits
        for its retry, or the lease is lost."""
        self._unwritten[subscription_id] = []
        try:
            # Rows a previous holder left `sending` (it died, its lease ran out): again.
            await WebhookDelivery.filter(subscription_id=subscription_id, status="sending").update(
                status="pending"
            )
            renewed = time.monotonic()
            while not self._stopping:
                sub = await WebhookSubscription.filter(id=subscription_id, is_active=True).first()
                if sub is None:
                    return
                rows = (
                    await WebhookDelivery.filter(subscription_id=subscription_id, status="pending")
                    .order_by("id")
                    .limit(self.batch)
                )
                now = utcnow()
                if not rows or (rows[0].next_attempt_at and rows[0].next_attempt_at > now):
                    return
                # In id order up to the first that is not due yet (normally only the head
                # can be waiting for a retry; never skip one and send what follows it).
                due = []
                for r in rows:
                    if r.next_attempt_at and r.next_attempt_at > now:
                        break
                    due.append(r)
                ids = [r.id for r in due]
                claimed = await WebhookDelivery.filter(id__in=ids, status="pending").update(
                    status="sending"
                )
                if claimed != len(ids):
                    await WebhookDelivery.filter(id__in=ids, status="sending").update(status="pending")
                    return
                for n, row in enumerate(due):
                    if time.monotonic() - renewed >= self.renew_every:
                        if not await self._renew(subscription_id):
                            await self._unclaim(due[n:])
                            return
                        renewed = time.monotonic()
                    if self._stopping or not await self._attempt(sub, row):
                        await self._unclaim(due[n + 1:] if not self._stopping else due[n:])
                        return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_outage(exc):
                log.exception("webhook subscription %s: worker failed", subscription_id)
            else:
                log.warning("webhook subscription %s: database unreachable (%s)",
                            subscription_id, exc)
        finally:
            # Outcomes first, then the lease: the next holder must see them. Shielded: a
            # stop that cancels this worker still gives the lease back once they are in.
            await asyncio.shield(self._finish(subscription_id))

    async def _finish(self, subscription_id: int) -> None:
        written = self._unwritten.pop(subscription_id, [])
        if written:
            await asyncio.gather(*written, return_exceptions=True)
        await self._release(subscription_id)
        self._wake.set()

    async def _unclaim(self, rows: list[WebhookDelivery]) -> None:
        if rows:
            await WebhookDelivery.filter(id__in=[r.id for r in rows], status="sending").update(
                status="pending"
            )

    async def _attempt(self, sub: WebhookSubscription, row: WebhookDelivery) -> bool:
        """POST one delivery and record the outcome. True: the next delivery may go
        (delivered or given up); False: this one waits for its retry."""
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        if self._stopping:
            return False
        try:
            await check_target(sub.url, allow_private=self.allow_private, resolve=False)
            import aiohttp

            headers = headers_for(row.guid, row.event, sub.secret, row.body)
            async with self._http().post(
                sub.url, data=row.body.encode(), headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                status_code = resp.status
                snippet = await resp.content.read(RESPONSE_SNIPPET)
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}: {snippet.decode('utf-8', 'replace')[:200]}".strip()
        except TargetRefused as exc:
            error = f"refused: {exc}"
        except TimeoutError:
            error = f"timeout after {self.timeout:g}s"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # connection refused, reset, DNS, TLS, a refused address
            error = f"{type(exc).__name__}: {exc}"[:300]
        seconds = time.monotonic() - started
        now = utcnow()
        attempts = row.attempts + 1
        entry = {"at": now.isoformat().replace("+00:00", "Z"), "status_code": status_code,
                 "error": error, "ms": round(seconds * 1000, 1)}
        log_entries = ([*(row.attempt_log or []), entry])[-ATTEMPT_LOG_MAX:]
        fields: dict[str, Any] = {"attempts": attempts, "last_status_code": status_code,
                                  "last_error": error, "attempt_log": log_entries}
        if error is None:
            fields.update(status="delivered", delivered_at=now, next_attempt_at=None)
            outcome = "delivered"
            self.stats.delivered += 1
        elif now >= row.give_up_at:
            fields.update(status="failed", next_attempt_at=None)
            outcome = "given_up"
            self.stats.given_up += 1
            log.warning("webhook delivery %s (%s to %s) given up after %d attempts: %s",
                        row.id, row.event, sub.url, attempts, error)
        else:
            delay = self.policy.delay(attempts)
            fields.update(status="pending", next_attempt_at=now + timedelta(seconds=delay))
            outcome = "retry"
            self.stats.failed_attempts += 1
            log.info("webhook delivery %s (%s to %s) failed (attempt %d): %s; retry in %.0fs",
                     row.id, row.event, sub.url, attempts, error, delay)
        future = self._recorder.record(row.id, fields)
        metrics.webhook_attempt(outcome, seconds)
        if outcome == "retry":
            await future  # the subscription waits anyway: commit the retry time now
            return False
        pending = self._unwritten.setdefault(sub.id, [])
        pending[:] = [f for f in pending if not f.done()]
        pending.append(future)
        return True
