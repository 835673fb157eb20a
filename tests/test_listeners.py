"""The API's start and stop steps are Sanic listeners: they start in the order they are
registered (the database first, a listener added after create_app last) and stop in reverse,
and a stop step that fails is logged without skipping the ones after it."""

from __future__ import annotations

import api.app as app_module
from api.app import create_app
from db.models import User
from tests.live import serve


class BrokenRedis:
    async def aclose(self) -> None:
        raise RuntimeError("redis went away")


async def test_listeners_run_in_order_and_a_failing_stop_step_skips_nothing(settings, monkeypatch, caplog):
    closed: list[str] = []
    real_close = app_module.close_db

    async def close_db() -> None:
        closed.append("db")
        await real_close()

    monkeypatch.setattr(app_module, "close_db", close_db)
    app = create_app(settings)
    seen: dict[str, object] = {}

    @app.before_server_start
    async def registered_last(app) -> None:
        # Everything create_app installed has started: the database and the events runtime.
        seen["users"] = await User.all().count()
        seen["events"] = getattr(app.ctx, "events_runtime", None) is not None

    @app.after_server_stop
    async def stops_first(app) -> None:
        seen["stop_order"] = list(closed)

    async with serve(app):
        events_runtime = app.ctx.events_runtime
        app.ctx.web_redis = BrokenRedis()  # the web channel's stop step will fail

    assert seen["users"] == 0 and seen["events"] is True
    assert seen["stop_order"] == []  # registered last: ran before the database closed
    assert events_runtime._stopped  # the events runtime still stopped after the failure
    assert closed == ["db"]  # and the database closed last
    assert "redis went away" in caplog.text
