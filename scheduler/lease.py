"""Run each scheduled job once across processes and replicas, with database leases.

Every process that runs a scheduler fires every job. Before doing the work, a process
claims the fire slot `job:{name}:{slot}` by inserting a `JobLease` row (the primary key
is unique, so exactly one insert wins on SQLite and PostgreSQL; the loser skips).

The row's `expires_at` is a deadline while the work runs and is pushed far into the future
when it finishes. A holder that crashed mid-job leaves an expired, unfinished lease behind;
`claim_slot` lets another process take it over with a conditional UPDATE (again exactly
one wins), so work that must not be lost (the daily digest) is finished by a survivor.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import datetime, timedelta

from tortoise.exceptions import IntegrityError

from core.clock import as_utc
from db.models import JobLease
from scheduler.clock import slot_iso

log = logging.getLogger("helpdesk.scheduler")

# A finished slot's lease "expires" this far ahead: it can never be taken over.
DONE_FOR = timedelta(days=36500)


def new_holder_id() -> str:
    """Who holds a lease: host, process and a random suffix (two runtimes in one process differ)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def slot_key(job: str, slot: datetime) -> str:
    return f"job:{job}:{slot_iso(slot)}"


def is_done(lease: JobLease, now: datetime) -> bool:
    return as_utc(lease.expires_at) - as_utc(now) > DONE_FOR / 2


async def claim(key: str, holder: str, now: datetime, ttl: timedelta) -> bool:
    """Claim `key` until now + ttl. True for exactly one claimer of a free or expired key.

    A key whose lease is held and unexpired (or finished) is refused, also to its own
    holder: the same slot never runs twice at once, even inside one process.
    """
    now = as_utc(now)
    existing = await JobLease.filter(key=key).first()
    if existing is None:
        try:
            await JobLease.create(key=key, holder=holder, expires_at=now + ttl)
            return True
        except IntegrityError:
            existing = await JobLease.filter(key=key).first()
            if existing is None:
                return False
    if as_utc(existing.expires_at) > now:
        return False
    # Expired and unfinished: the holder died. Take it over; the conditional UPDATE on the
    # old holder and deadline means only one of several survivors wins.
    taken = await JobLease.filter(
        key=key, holder=existing.holder, expires_at=existing.expires_at
    ).update(holder=holder, expires_at=now + ttl)
    if taken:
        log.warning("took over expired lease %s from %s", key, existing.holder)
    return bool(taken)


async def claim_slot(job: str, slot: datetime, holder: str, now: datetime, ttl: timedelta) -> bool:
    """Claim the fire slot of `job` at `slot` (see `claim`)."""
    return await claim(slot_key(job, slot), holder, now, ttl)


async def finish(key: str, holder: str, now: datetime) -> None:
    """Mark the work under `key` done: it will never be taken over or run again."""
    await JobLease.filter(key=key, holder=holder).update(expires_at=as_utc(now) + DONE_FOR)


async def release(key: str, holder: str) -> None:
    """Give up a claim after a failure, so a later attempt (or another process) may retry."""
    await JobLease.filter(key=key, holder=holder).delete()


async def slot_state(job: str, slot: datetime, now: datetime) -> str:
    """ "free", "running", "expired" or "done" for the slot of `job` at `slot`."""
    lease = await JobLease.filter(key=slot_key(job, slot)).first()
    if lease is None:
        return "free"
    if is_done(lease, now):
        return "done"
    return "running" if as_utc(lease.expires_at) > as_utc(now) else "expired"


async def last_runs(job: str, limit: int = 1) -> list[JobLease]:
    """The latest claimed slots of `job`, newest first (keys sort by slot time)."""
    return await JobLease.filter(key__startswith=f"job:{job}:").order_by("-key").limit(limit)


async def prune(before: datetime) -> int:
    """Delete slot leases created before `before` (a slot's lease only guards that slot)."""
    return await JobLease.filter(key__startswith="job:", created_at__lt=as_utc(before)).delete()
