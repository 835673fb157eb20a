"""The stats digest: the seed's numbers, per-admin load, the oldest open request, and what
changed since the previous digest. Posted to the admin group on a schedule by the
scheduler and shown on demand by the bot's /stats (`build_digest_text`).
"""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.functions import Count

from core import requests as svc
from core import runtime, staff_stats
from core.clock import as_utc
from core.notice_texts import format_age, short, st
from core.texts import PRIORITY_LABELS, lang_of
from db.models import Cursor, CustomerRequest, Status

# Cursor row holding the fire slot (unix seconds) of the last posted digest.
DIGEST_CURSOR = "scheduler:digest"
MAX_LOAD_LINES = 12


async def last_digest_time() -> datetime | None:
    """When the previous digest was posted (its scheduled slot), or None."""
    row = await Cursor.filter(name=DIGEST_CURSOR).first()
    if row is None or not row.position:
        return None
    return datetime.fromtimestamp(row.position, tz=UTC)


async def mark_digest_posted(slot: datetime) -> None:
    """Remember `slot` as the last digest; never moves backwards."""
    position = int(as_utc(slot).timestamp())
    updated = await Cursor.filter(name=DIGEST_CURSOR, position__lt=position).update(
        position=position
    )
    if not updated and not await Cursor.filter(name=DIGEST_CURSOR).exists():
        try:
            await Cursor.create(name=DIGEST_CURSOR, position=position)
        except IntegrityError:  # created meanwhile by another process: keep the later one
            await Cursor.filter(name=DIGEST_CURSOR, position__lt=position).update(position=position)


async def _admin_load(now: datetime, tz: str) -> list[dict[str, Any]]:
    # The same figures as stats/admins/ (core.staff_stats): a fixed number of queries.
    return await staff_stats.admin_stats(now, tz)


async def _changes(since: datetime, now: datetime) -> dict[str, int]:
    # A request completed and then closed inside the window counts as closed only.
    row = (
        await CustomerRequest.all()
        .annotate(
            new_n=Count("id", _filter=Q(created_at__gte=since, created_at__lt=now)),
            completed_n=Count(
                "id",
                _filter=Q(
                    status=Status.completed, status_changed_at__gte=since, status_changed_at__lt=now
                ),
            ),
            closed_n=Count(
                "id",
                _filter=Q(
                    status=Status.closed, status_changed_at__gte=since, status_changed_at__lt=now
                ),
            ),
        )
        .first()
        .values("new_n", "completed_n", "closed_n")
    )
    return {
        "new": row["new_n"] or 0,
        "completed": row["completed_n"] or 0,
        "closed": row["closed_n"] or 0,
    }


async def build_digest(now: datetime, since: datetime | None = None) -> dict[str, Any]:
    """The digest's numbers as of `now` (a constant number of queries, whatever the data).

    `since` is the start of the "what changed" window: by default the previous digest's
    slot, or the last 24 hours when no digest was posted yet.
    """
    now = as_utc(now)
    tz = runtime.settings().tz
    stats = await svc.stats(tz, now=now)
    previous = since if since is not None else await last_digest_time()
    window_start = as_utc(previous) if previous is not None else now - timedelta(hours=24)
    oldest = (
        await CustomerRequest.filter(status=Status.open)
        .order_by("created_at", "id")
        .only("id", "title", "priority", "created_at")
        .first()
    )
    return {
        "generated_at": now,
        "stats": stats,
        "admins": await _admin_load(now, tz),
        "oldest_open": None
        if oldest is None
        else {
            "id": oldest.id,
            "title": oldest.title,
            "priority": str(oldest.priority),
            "created_at": as_utc(oldest.created_at),
            "age": now - as_utc(oldest.created_at),
        },
        "since": previous,
        "changes": await _changes(window_start, now),
    }


def csat_line(stats: dict[str, Any], lang: str) -> str:
    """"Satisfaction: 4.5 of 5 (12 ratings)" or "no ratings yet"."""
    if not stats.get("csat_responses"):
        return st("digest_csat_none", lang)
    return st("digest_csat", lang, avg=f"{stats['csat_average']:.2f}", n=stats["csat_responses"])


def admin_extras(admin: dict[str, Any], lang: str) -> str:
    """An admin's week: completed in 7 days, median first response, CSAT (when known)."""
    text = st("digest_load_week", lang, week=admin.get("completed_7d", 0))
    minutes = admin.get("median_first_response_minutes")
    if minutes is not None:
        text += st("digest_load_frt", lang, frt=format_age(timedelta(minutes=minutes), lang))
    if admin.get("csat_average") is not None:
        text += st("digest_load_csat", lang, avg=f"{admin['csat_average']:.1f}")
    return text


def render_digest(digest: dict[str, Any], lang: str = "ru", tz: str | None = None) -> str:
    """The digest as short HTML lines for Telegram."""
    lang = lang_of(lang)
    zone = ZoneInfo(tz or runtime.settings().tz)
    s = digest["stats"]
    when = digest["generated_at"].astimezone(zone).strftime("%d.%m.%Y %H:%M")
    lines = [
        st("digest_title", lang, when=when),
        "",
        st(
            "digest_totals",
            lang,
            total=s["total_requests"],
            open=s["open_requests"],
            progress=s["in_progress_requests"],
        ),
        st("digest_done", lang, today=s["completed_today"], rate=s["completion_rate"]),
        csat_line(s, lang),
        "",
    ]
    if digest["since"] is not None:
        since = as_utc(digest["since"]).astimezone(zone).strftime("%d.%m %H:%M")
        lines.append(st("digest_since", lang, since=since))
    else:
        lines.append(st("digest_since_day", lang))
    lines += [st("digest_changes", lang, **digest["changes"]), ""]
    lines.append(st("digest_load", lang))
    admins = digest["admins"]
    if not admins:
        lines.append(st("digest_nobody", lang))
    for admin in admins[:MAX_LOAD_LINES]:
        lines.append(
            st(
                "digest_load_line",
                lang,
                name=html.escape(short(admin["name"], 40)),
                progress=admin["in_progress"],
                today=admin["completed_today"],
            )
            + admin_extras(admin, lang)
        )
    if len(admins) > MAX_LOAD_LINES:
        lines.append(st("digest_load_more", lang, n=len(admins) - MAX_LOAD_LINES))
    lines.append("")
    oldest = digest["oldest_open"]
    if oldest is None:
        lines.append(st("digest_no_open", lang))
    else:
        lines.append(st("digest_oldest", lang))
        lines.append(
            st(
                "digest_oldest_line",
                lang,
                id=oldest["id"],
                title=html.escape(short(oldest["title"])),
                age=format_age(oldest["age"], lang),
                priority=PRIORITY_LABELS[lang].get(oldest["priority"], oldest["priority"]),
            )
        )
    return "\n".join(lines)


async def build_digest_text(lang: str = "ru", now: datetime | None = None) -> str:
    """The digest as Telegram HTML, for the scheduled post and the bot's /stats.

    Read-only: it never moves the "since the last digest" mark.
    """
    digest = await build_digest(now or datetime.now(UTC))
    return render_digest(digest, lang)
