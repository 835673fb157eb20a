"""Real processes for cross-process tests and benchmarks: API servers and a private Redis.

`ApiProcess` runs `create_app(settings)` with Sanic in a separate Python process
(`sys.executable -c ...`), configured by environment variables like production, plus
`HELPDESK_EVENTS_CHANNEL` so concurrent test runs never share a Redis channel.
`RedisServer` runs a throw-away `redis-server` on a free loopback port that a test may stop
and start again (the shared one on 6379 is never touched).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SERVER_CODE = """
import os, sys
sys.path.insert(0, os.environ["HELPDESK_ROOT"])
from sanic import Sanic
from bootstrap.app import create_app
from core.settings import load_settings

settings = load_settings(dotenv=False)
extra = dict(settings.extra)
if os.environ.get("HELPDESK_EVENTS_CHANNEL"):
    extra["events_channel"] = os.environ["HELPDESK_EVENTS_CHANNEL"]
if os.environ.get("HELPDESK_WS_SEND_QUEUE"):
    extra["ws_send_queue"] = int(os.environ["HELPDESK_WS_SEND_QUEUE"])
settings = settings.with_overrides(extra=extra)
if os.environ.get("HELPDESK_FANOUT_LOG"):
    import logging
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    fanout = logging.getLogger("helpdesk.ws.fanout")
    fanout.setLevel(logging.DEBUG)
    fanout.addHandler(handler)
    fanout.propagate = False
app = create_app(settings, name=os.environ.get("HELPDESK_APP_NAME", "helpdesk_proc"))
app.run(host=settings.host, port=settings.port, single_process=True, access_log=False,
        motd=False, backlog=4096)
"""


# Ports handed out to servers the tests start by number, from below the OS's ephemeral range
# (32768-60999 on Linux): servers that bind port 0 (tests/live.serve) and outgoing
# connections take their ports from that range, so they can never be given a port handed
# out here between the moment it is chosen and the moment its server binds it.
# Parallel test workers (pytest-xdist) split the range, so two workers never pick the same
# port in the moment between choosing it and binding it.
_WORKERS = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0) % _WORKERS
_SLICE = (32000 - 20000) // _WORKERS
_PORT_RANGE = (20000 + _WORKER * _SLICE, 20000 + (_WORKER + 1) * _SLICE - 1)
_ports_given: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on now, outside the ephemeral range, never handed out
    twice in one test session."""
    while True:
        port = random.randint(*_PORT_RANGE)
        if port in _ports_given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ports_given.add(port)
        return port


def wait_port(port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class ApiProcess:
    """One API server process on 127.0.0.1 (a free port unless given)."""

    def __init__(
        self,
        database_url: str,
        *,
        redis_url: str | None = None,
        channel: str | None = None,
        media_root: Path | None = None,
        port: int | None = None,
        log_path: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "HELPDESK_ROOT": str(ROOT),
            "DATABASE_URL": database_url,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "SCHEDULER_ENABLED": "false",
            "TELEGRAM_MODE": "off",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("REDIS_URL", None)
        self.env.pop("TELEGRAM_BOT_TOKEN", None)
        if redis_url:
            self.env["REDIS_URL"] = redis_url
        if channel:
            self.env["HELPDESK_EVENTS_CHANNEL"] = channel
        if media_root:
            self.env["MEDIA_ROOT"] = str(media_root)
        self.env.update(extra_env or {})
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> ApiProcess:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER_CODE],
            env=self.env,
            cwd=str(ROOT),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        wait_port(self.port, timeout, self.proc)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log_text(self) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-5000:]
        return ""


def redis_server_available() -> bool:
    return shutil.which("redis-server") is not None


class RedisServer:
    """A private, non-persistent redis-server on a free loopback port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, 10, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.kill()  # like a crash: no goodbye to the clients
        self.proc.wait(5)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
