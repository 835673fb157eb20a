"""Blueprints that name their error format instead of having Sanic guess it.

A route added without `error_format` makes Sanic read the handler's source and parse it
(`inspect.getsource` + `ast.parse`) to guess whether its errors should be JSON or HTML:
two thirds of the time it takes to build the app (0.1 s of 0.15 s; the test suite builds
hundreds of apps). The guess is never used here: api.app's exception handlers answer every
error themselves. The format only matters if one of those handlers fails, when Sanic's own
error page takes over; pages get HTML there, everything else JSON.
"""

from __future__ import annotations

from typing import Any

from sanic import Blueprint as SanicBlueprint


class Blueprint(SanicBlueprint):
    """A Sanic blueprint whose routes default to JSON errors."""

    ERROR_FORMAT = "json"

    def route(self, *args: Any, error_format: str | None = None, **kwargs: Any) -> Any:
        return super().route(*args, error_format=error_format or self.ERROR_FORMAT, **kwargs)


class PageBlueprint(Blueprint):
    """A blueprint of HTML pages (the web form, the staff console): HTML errors."""

    ERROR_FORMAT = "html"
