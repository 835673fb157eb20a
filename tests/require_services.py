"""pytest plugin (loaded by tests/conftest.py): with HELPDESK_REQUIRE_SERVICES=1 (set by
.ci/run) ANY skipped test is a failure, whatever skipped it: a missing service, a missing
binary, `pytest.importorskip`, a skip marker, a whole module skipped at collection. CI
then cannot pass while part of the suite silently did not run. Expected failures (xfail)
are left alone.
"""

from __future__ import annotations

import os

import pytest

SWITCH = "HELPDESK_REQUIRE_SERVICES"


def _required() -> bool:
    return os.environ.get(SWITCH) == "1"


def _reason(report: pytest.BaseReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _as_failure(report: pytest.BaseReport) -> None:
    report.outcome = "failed"
    report.longrepr = f"skipped, which {SWITCH}=1 does not allow: {_reason(report)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    if _required() and report.skipped and not hasattr(report, "wasxfail"):
        _as_failure(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> object:
    outcome = yield
    report = outcome.get_result()
    if _required() and report.skipped:
        _as_failure(report)
