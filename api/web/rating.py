"""`POST /api/public/requests/<key>/rating/`: the customer's web page rates the request
(core.csat, with the rights of the request's customer: the key stands for them).

Form fields (or JSON) `rating` (1-5) and optional `comment`. A plain form post (no
JavaScript) is redirected back to the page; the page's script gets the public request JSON.
Rate-limited like replies (WEB_RATE_LIMIT_PER_MIN per client address).
"""

from __future__ import annotations

import html
from typing import Any

from sanic import Request
from sanic.response import HTTPResponse, redirect

from api.http import int_from_text, json
from api.web.i18n import choose_language, text
from api.web.public import form_fields, public_request, rate_limited, request_for_key, wants_html
from core import csat
from core.errors import ValidationFailed
from db.models import CustomerRequest, Status


async def rate_from_page(request: Request, key: str) -> HTTPResponse:
    lang = choose_language(request, request.app.ctx.settings.language)
    req = await request_for_key(key)
    if (refused := await rate_limited(request, "reply", lang)) is not None:
        return refused
    data = form_fields(request)
    score = int_from_text((data.get("rating") or "").strip())
    if score not in csat.SCORES:
        raise ValidationFailed({"rating": [text("err_rating", lang)]})
    comment = data.get("comment")
    await csat.rate_request(req.customer, req.id, score, comment if comment is not None else None)
    if wants_html(request):
        return redirect(f"/r/{key}?rated=1", status=303)
    fresh = await request_for_key(key)
    return json({"request": public_request(fresh, lang)}, status=200)


def rating_context(req: CustomerRequest, lang: str, *, just_rated: bool = False) -> dict[str, Any]:
    """The request page's survey: shown while the request is completed, the current rating
    marked (aria-pressed), its comment filled in."""
    buttons = "\n".join(
        '      <button type="submit" name="rating" value="{n}" class="rating-button" '
        'aria-pressed="{pressed}" aria-label="{label}">{n}</button>'.format(
            n=n, pressed="true" if req.rating == n else "false",
            label=html.escape(text("rating_button", lang, n=n)),
        )
        for n in csat.SCORES
    )
    status = ""
    if req.rating:
        status = text("rating_current", lang, n=req.rating)
        if just_rated:
            status = text("rating_thanks", lang) + " " + status
    return {
        "rating_hidden": "" if req.status == Status.completed else " hidden",
        "rating_buttons": buttons,
        "rating_comment": req.rating_comment or "",
        "rating_status": status,
        "rating_status_hidden": "" if status else " hidden",
    }
