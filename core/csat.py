"""Customer satisfaction: a 1-5 rating with an optional comment, once a request is completed.

The customer is asked where they wrote (the bot's buttons under the "completed" notice,
buttons on the web page); REST customers can rate too. One rating per request, which its
customer may change while the request is completed; once it is closed (or reopened) the
rating stands as it is.
"""

from __future__ import annotations

from typing import Any

from tortoise import connections
from tortoise.functions import Count, Sum
from tortoise.transactions import in_transaction

from core import events, history, pg_queries
from core.clock import now
from core.errors import Conflict, NotFound, ValidationFailed
from core.limits import check_text
from core.limits import current as current_limits
from core.queries import get_request
from core.queries import load_request as _load
from core.serializers import dt, user_data
from core.texts import t
from db.models import CustomerRequest, Status, User

REQUEST_RATED = events.REQUEST_RATED
SCORES = (1, 2, 3, 4, 5)


def _score(value: Any, lang: str | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in SCORES:
        raise ValidationFailed({"rating": [t("err_rating_range", lang)]})
    return value


def rated_data(req: CustomerRequest) -> dict[str, Any]:
    """The `request.rated` event's data."""
    return {
        "id": req.id,
        "title": req.title,
        "status": str(req.status),
        "rating": req.rating,
        "rating_comment": req.rating_comment or "",
        "rated_at": dt(req.rated_at),
        "customer": user_data(req.customer),
        "assigned_admin": user_data(req.assigned_admin) if req.assigned_admin_id else None,
    }


async def rate_request(
    actor: User, request_id: int, rating: Any, comment: str | None = None
) -> CustomerRequest:
    """Set (or change) the rating of the customer's own completed request.

    Only the request's customer (NotFound for anyone else, staff included: a rating is the
    customer's word). Conflict unless the request is completed. `comment` None keeps the
    current comment, "" clears it. Atomic: one conditional UPDATE on status completed, so
    a rating never lands on a request closed meanwhile; the history records the change and
    a `request.rated` event is recorded in the same transaction (for integrations).
    Rating again with the same values changes nothing and records nothing.
    """
    lang = actor.language
    score = _score(rating, lang)
    errors: dict[str, list[str]] = {}
    if comment is not None:
        check_text(errors, "comment", comment, current_limits().content, lang, required=False)
        if errors:
            raise ValidationFailed(errors)
        comment = comment.strip()
    req = await get_request(actor, request_id)
    if req.customer_id != actor.id:
        raise NotFound(t("err_not_found", lang))
    if req.status != Status.completed:
        raise Conflict(t("err_rating_status", lang))
    new_comment = req.rating_comment if comment is None else comment
    if req.rating == score and (req.rating_comment or "") == (new_comment or ""):
        return req
    async with in_transaction() as conn:
        changed = await CustomerRequest.filter(id=req.id, status=Status.completed).using_db(conn).update(
            rating=score, rating_comment=new_comment or None, rated_at=now()
        )
        if changed:
            fresh = await _load(req.id, conn)
            await history.record_diff(conn, req, fresh, actor)
            await events.record_event(REQUEST_RATED, rated_data(fresh), using_db=conn)
    if not changed:
        raise Conflict(t("err_rating_status", lang))
    events.committed()
    return fresh


async def summary() -> dict[str, Any]:
    """`csat_average` (two decimals, null without ratings) and `csat_responses`, over every
    rated request: one query (on PostgreSQL of the counters per score, migration
    0017_stats_counters; elsewhere an aggregate over the rating index)."""
    db = connections.get("default")
    if db.capabilities.dialect == "postgres":
        return summary_of(*await pg_queries.rating_totals(db))
    # Sum and count, not Avg: Tortoise casts an average back to the column's integer type.
    row = (
        await CustomerRequest.filter(rating__isnull=False)
        .annotate(n=Count("id"), total=Sum("rating"))
        .first()
        .values("n", "total")
    )
    return summary_of(int((row or {}).get("n") or 0), int((row or {}).get("total") or 0))


def summary_of(n: int, total: int) -> dict[str, Any]:
    """The summary of `n` ratings adding up to `total` (core.pg_json.STATS_RIDER reads
    them on PostgreSQL)."""
    return {
        "csat_average": round(total / n, 2) if n else None,
        "csat_responses": n,
    }
