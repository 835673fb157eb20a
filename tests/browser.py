"""Headless Chromium for browser tests: Debian's package driven by Playwright for Python."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVICES

CHROMIUM = os.environ.get("HELPDESK_CHROMIUM", "/usr/bin/chromium")
# Playwright's own browser download does not work here; these flags keep Chromium off the
# (closed) network and out of the sandbox it cannot have as root.
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def need_browser() -> None:
    """Skip (fail under HELPDESK_REQUIRE_SERVICES=1) without Chromium or Playwright."""
    reason = None
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        reason = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            reason = "Playwright for Python is not installed (pip install playwright)"
    if reason:
        if REQUIRE_SERVICES:
            pytest.fail(reason + " (HELPDESK_REQUIRE_SERVICES=1 turns this skip into a failure)")
        pytest.skip(reason)
