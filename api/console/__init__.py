"""Staff console: `/console/` in the browser for admins and directors (docs/console.md).

Sign-in with username and password (a server-side session in a cookie, CSRF tokens on
every form), the live queue, a request's page with its actions, and stats with charts
drawn on the server. Pages are Jinja2 templates (api/console/templates), scripts and
styles are files of our own origin (api/console/static): the customer pages' CSP holds.
Every action calls the domain function REST calls, with the signed-in user.
"""

from __future__ import annotations

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from api.blueprint import PageBlueprint
from api.console import actions, pages
from api.http import guard_ids
from api.web.render import SECURITY_HEADERS


def get_blueprint() -> PageBlueprint:
    bp = PageBlueprint("console")
    guard_ids(bp)
    bp.add_route(pages.queue_page, "/console/", methods=["GET"], name="queue")
    bp.add_route(pages.sign_in_page, "/console/sign-in", methods=["GET"], name="sign_in_page")
    bp.add_route(actions.sign_in, "/console/sign-in", methods=["POST"], name="sign_in")
    bp.add_route(actions.sign_out, "/console/sign-out", methods=["POST"], name="sign_out")
    bp.add_route(pages.request_page, "/console/requests/<request_id:int>/", methods=["GET"],
                 name="request")
    bp.add_route(actions.request_action, "/console/requests/<request_id:int>/<action:str>",
                 methods=["POST"], name="request_action")
    bp.add_route(pages.download, "/console/attachments/<attachment_id:int>/", methods=["GET"],
                 name="download")
    bp.add_route(pages.stats_page, "/console/stats/", methods=["GET"], name="stats")
    bp.add_route(pages.static_file, "/static/console/<name:str>", methods=["GET", "HEAD"],
                 name="console_static")

    @bp.on_response
    async def security_headers(request: Request, response: HTTPResponse) -> None:
        for name, value in SECURITY_HEADERS.items():
            if name not in response.headers:
                response.headers[name] = value

    return bp


def install(app: Sanic) -> None:
    """Add the console's routes to `app` (called once by create_app)."""
    app.blueprint(get_blueprint())
