"""A request's status moves: one table of what is allowed, one function that makes a move.

`MOVES` says, for every move: who may make it, from which statuses, to which status,
what happens to the assignee, which system message the thread gets and whether it stamps
`completed_at`. `run` is the only code that changes a request's status; every channel
reaches it through the use cases below (REST actions and PATCH, console, bot buttons and
commands, scheduler):

    take        staff                 open (unassigned)   -> in_progress   assignee := actor
    complete    assignee or director  in_progress         -> completed     completed_at := now
    close       director              completed           -> closed
    auto_close  the desk (scheduler)  completed           -> closed
    reopen      director              completed, closed   -> in_progress   (assigned) / open (not)
    reassign    director              open, in_progress   -> in_progress   assignee := chosen admin
    release     director              in_progress         -> open          assignee cleared

Invariants every move keeps: `in_progress` has an assignee, `open` has none, `completed`
has completed_at. A director's direct status change (REST `PATCH {"status"}`, the
console's "set status") may use the moves marked `direct`: it is refused with the list of
statuses reachable from the current one (`direct_targets`).

Each move is one transaction: a conditional UPDATE (on the status it read, and for take
on "still unassigned", so of concurrent takers exactly one wins), the system message
(core.thread), the history diff, `request_updated` and `request_status_changed` events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tortoise.transactions import in_transaction

from core import events, history, runtime, thread
from core.errors import Conflict, PermissionDenied, ValidationFailed
from core.permissions import is_director, is_staff, require_director
from core.serializers import display_name, request_data
from core.texts import STATUS_LABELS, lang_of, t
from db.models import CustomerRequest, Role, Status, User

# Who may make a move.
STAFF = "staff"
ASSIGNEE_OR_DIRECTOR = "assignee_or_director"
DIRECTOR = "director"
SYSTEM = "system"  # the desk itself (the scheduler); no user check

# What a move does to the assignee.
KEEP = "keep"
ACTOR = "actor"  # the one who makes the move
GIVEN = "given"  # the admin named by the caller (reassign)
CLEAR = "clear"


@dataclass(frozen=True)
class Move:
    name: str
    who: str
    sources: frozenset[Status]
    to: Status
    assignee: str
    text: str  # core.texts key of the system message
    refused: str  # core.texts key when the request is in another status
    assigned: bool | None = None  # the move needs an assignee (True), none (False), either (None)
    completes: bool = False  # stamps completed_at
    direct: bool = False  # reachable by a director's direct status change (PATCH)


def _m(name: str, who: str, sources: tuple[Status, ...], to: Status, assignee: str, text: str,
       refused: str, **kw: Any) -> Move:
    return Move(name, who, frozenset(sources), to, assignee, text, refused, **kw)


MOVES: tuple[Move, ...] = (
    _m("take", STAFF, (Status.open,), Status.in_progress, ACTOR,
       "request_taken", "err_cannot_take_status", assigned=False),
    _m("complete", ASSIGNEE_OR_DIRECTOR, (Status.in_progress,), Status.completed, KEEP,
       "request_completed", "err_not_in_progress", completes=True, direct=True),
    _m("close", DIRECTOR, (Status.completed,), Status.closed, KEEP,
       "request_closed", "err_close_status", direct=True),
    _m("auto_close", SYSTEM, (Status.completed,), Status.closed, KEEP,
       "request_auto_closed", "err_close_status"),
    _m("reopen", DIRECTOR, (Status.completed, Status.closed), Status.in_progress, KEEP,
       "request_reopened", "err_reopen_status", assigned=True, direct=True),
    _m("reopen", DIRECTOR, (Status.completed, Status.closed), Status.open, KEEP,
       "request_reopened", "err_reopen_status", assigned=False, direct=True),
    _m("reassign", DIRECTOR, (Status.open, Status.in_progress), Status.in_progress, GIVEN,
       "request_reassigned", "err_reopen_status"),
    _m("release", DIRECTOR, (Status.in_progress,), Status.open, CLEAR,
       "request_status_changed", "err_move_not_allowed", direct=True),
)


def _applies(move: Move, req: CustomerRequest) -> bool:
    if req.status not in move.sources:
        return False
    return move.assigned is None or move.assigned == (req.assigned_admin_id is not None)


def move_for(name: str, req: CustomerRequest | None = None) -> Move:
    """The move called `name` for the request as it is (reopen's target depends on whether
    it has an assignee); the first of that name without a request or when none applies
    (it will be refused)."""
    found = [m for m in MOVES if m.name == name]
    if not found:
        raise KeyError(name)
    if req is None:
        return found[0]
    return next((m for m in found if _applies(m, req)), found[0])


def direct_targets(req: CustomerRequest) -> list[Status]:
    """The statuses a director may set directly on `req` as it is."""
    return [m.to for m in MOVES if m.direct and _applies(m, req)]


def direct_move(req: CustomerRequest, to: str) -> Move | None:
    """The move a director's direct change of `req` to status `to` makes; None if none."""
    return next((m for m in MOVES if m.direct and m.to == to and _applies(m, req)), None)


def refusal(actor: User, req: CustomerRequest, to: str) -> str:
    """Why a direct change to `to` is refused, naming the statuses that are allowed."""
    lang = lang_of(actor.language)
    labels = STATUS_LABELS[lang]
    allowed = ", ".join(f"«{labels[s]}» ({s.value})" for s in direct_targets(req))
    return t(
        "err_move_not_allowed", actor.language,
        current=labels.get(str(req.status), str(req.status)), target=labels.get(str(to), str(to)),
        allowed=allowed or t("err_move_none", actor.language),
    )


def check_actor(move: Move, actor: User) -> None:
    """The part of `move.who` that needs no request (PermissionDenied)."""
    if move.who == DIRECTOR:
        require_director(actor)
    elif move.who in (STAFF, ASSIGNEE_OR_DIRECTOR) and not is_staff(actor):
        raise PermissionDenied(t("err_no_permission", actor.language))


def check(move: Move, actor: User, req: CustomerRequest) -> None:
    """Raise unless `actor` may make `move` on `req` as it is: PermissionDenied for the
    wrong person, Conflict for the wrong status or assignment."""
    check_actor(move, actor)
    if move.who == ASSIGNEE_OR_DIRECTOR and req.assigned_admin_id != actor.id and not is_director(actor):
        raise PermissionDenied(t("err_complete_foreign", actor.language))
    if move.assigned is False and move.assignee == ACTOR and req.assigned_admin_id is not None:
        raise Conflict(t("err_already_assigned", actor.language))
    if not _applies(move, req):
        if move.name == "release":
            raise Conflict(refusal(actor, req, move.to))
        raise Conflict(t(move.refused, actor.language, status=req.status))


async def run(
    actor: User,
    req: CustomerRequest,
    move: Move,
    *,
    assignee: User | None = None,
    text: str | None = None,
    fields: dict[str, Any] | None = None,
    author: User | None = None,
    automatic: bool = False,
    lost: str = "err_manage_request",
) -> CustomerRequest:
    """Make `move` on `req` (as loaded by the caller) in one transaction and return the
    request as it is afterwards. `check` first; then a conditional UPDATE on the status
    read (and for a take, on still being unassigned): a request changed meanwhile is a
    Conflict (`lost`) and nothing is written. `fields` are other columns changed in the
    same UPDATE (a PATCH that also edits the title); `text` replaces the move's system
    message; `author` writes it instead of `actor`; `automatic` records the history as
    the desk's (auto-close)."""
    from core.clock import now
    from core.queries import load_request as _load

    check(move, actor, req)
    ts = now()
    values: dict[str, Any] = {**(fields or {}), "status": move.to, "status_changed_at": ts, "updated_at": ts}
    if move.assignee == ACTOR:
        values["assigned_admin_id"] = actor.id
    elif move.assignee == GIVEN:
        if assignee is None:
            raise ValidationFailed({"admin_id": [t("err_bad_assignee", actor.language)]})
        values["assigned_admin_id"] = assignee.id
    elif move.assignee == CLEAR:
        values["assigned_admin_id"] = None
    if move.completes:
        values["completed_at"] = ts
    keeps = values.get("assigned_admin_id", req.assigned_admin_id)
    # The invariants, whatever a row of the table says: in progress means assigned, open not.
    if (move.to == Status.in_progress and keeps is None) or (move.to == Status.open and keeps is not None):
        raise Conflict(refusal(actor, req, move.to))
    if text is None and move.text == "request_status_changed":
        text = status_change_text(actor, move.to)
    elif text is None:
        text = t(move.text, actor.language, name=display_name(assignee or actor))
    condition: dict[str, Any] = {"id": req.id, "status": req.status}
    if move.assigned is False:
        condition["assigned_admin_id__isnull"] = True
    async with in_transaction() as conn:
        changed = await CustomerRequest.filter(**condition).using_db(conn).update(**values)
        if changed:
            await thread.add_system_message(conn, req, author or actor, text)
            fresh = await _load(req.id, conn)
            await history.record_diff(conn, req, fresh, None if automatic else actor)
            await events.record_event(events.REQUEST_UPDATED, request_data(fresh), using_db=conn)
            await record_status_change(conn, fresh, req.status)
    if not changed:
        raise Conflict(t(lost, actor.language))
    events.committed()
    return fresh


async def record_status_change(conn: Any, fresh: CustomerRequest, previous: str) -> None:
    """The request_status_changed event of a move (after its request_updated), when the
    status really changed."""
    if str(fresh.status) == str(previous):
        return
    await events.record_event(
        events.REQUEST_STATUS_CHANGED,
        {"id": fresh.id, "previous_status": str(previous), "status": str(fresh.status),
         "request": request_data(fresh)},
        using_db=conn,
    )


# --- use cases -------------------------------------------------------------------------------


async def _make(actor: User, request_id: int, name: str, **kw: Any) -> CustomerRequest:
    from core.queries import load_request as _load

    check_actor(move_for(name), actor)  # a customer is refused before any query
    req = await _load(request_id)
    return await run(actor, req, move_for(name, req), **kw)


async def take_request(actor: User, request_id: int) -> CustomerRequest:
    """Assign the request to `actor` and move it to in_progress. Of many concurrent
    takers exactly one wins; the others get Conflict and nothing else changes."""
    return await _make(actor, request_id, "take", lost="err_already_assigned")


async def complete_request(actor: User, request_id: int) -> CustomerRequest:
    """in_progress -> completed; only the assignee or a director (PermissionDenied otherwise)."""
    return await _make(actor, request_id, "complete")


async def close_request(actor: User, request_id: int) -> CustomerRequest:
    """completed -> closed, director only."""
    return await _make(actor, request_id, "close")


async def reopen_request(actor: User, request_id: int) -> CustomerRequest:
    """completed/closed -> in_progress (if assigned) or open, director only."""
    return await _make(actor, request_id, "reopen")


async def reassign_request(actor: User, request_id: int, admin_id: int) -> CustomerRequest:
    """Director assigns the request to another admin (open requests move to in_progress)."""
    from core.queries import load_request as _load

    require_director(actor)
    req = await _load(request_id)
    admin = await User.filter(id=admin_id, is_active=True).first()
    if admin is None or admin.role not in (Role.admin, Role.director):
        raise ValidationFailed({"admin_id": [t("err_bad_assignee", actor.language)]})
    return await run(actor, req, move_for("reassign", req), assignee=admin)


async def auto_close_request(request_id: int, days: int) -> CustomerRequest | None:
    """Scheduler: completed -> closed after a quiet period. The system message is written
    on behalf of the assignee (or the customer). Returns None if it moved meanwhile."""
    from core.queries import load_request as _load

    req = await _load(request_id)
    move = move_for("auto_close", req)
    if not _applies(move, req):
        return None
    author = req.assigned_admin or req.customer
    text = t("request_auto_closed", runtime.settings().language, days=days)
    try:
        return await run(author, req, move, text=text, automatic=True)
    except Conflict:
        return None


async def set_status(actor: User, request_id: int, status: str) -> CustomerRequest:
    """A director's direct status change (the moves marked `direct`): PermissionDenied for
    anyone else, then exactly update_request with `{"status": status}` (its validation,
    system message, history and event). The console's "set status"; REST's PATCH keeps
    answering a non-director 400 on the field."""
    from core.request_writes import update_request

    require_director(actor)
    return await update_request(actor, request_id, {"status": status})


def status_change_text(actor: User, status: str) -> str:
    """The system message of a direct status change."""
    label = STATUS_LABELS[lang_of(actor.language)][status]
    return t("request_status_changed", actor.language, status=label, name=display_name(actor))
