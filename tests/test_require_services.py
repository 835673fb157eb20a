"""`.ci/run` (HELPDESK_REQUIRE_SERVICES=1) fails on ANY skipped test, not only on the
service-guarded ones: an inner pytest run with the plugin tests/require_services.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SKIPPING = '''
import pytest

def test_runs():
    assert True

def test_importorskip():
    pytest.importorskip("a_module_that_is_not_installed_anywhere")

@pytest.mark.skip(reason="marker")
def test_marked():
    pass

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False
'''

MODULE_SKIP = '''
import pytest
pytest.importorskip("another_module_that_is_not_installed")

def test_never_collected():
    pass
'''


def inner_pytest(tmp_path: Path, required: bool, source: str = SKIPPING) -> subprocess.CompletedProcess:
    (tmp_path / "test_inner.py").write_text(source)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("HELPDESK_REQUIRE_SERVICES", None)
    if required:
        env["HELPDESK_REQUIRE_SERVICES"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.require_services", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize("required", [False, True])
def test_any_skip_fails_the_run_under_the_ci_switch(tmp_path, required):
    result = inner_pytest(tmp_path, required)
    summary = result.stdout.strip().splitlines()[-1]
    if not required:
        assert result.returncode == 0, result.stdout
        assert "1 passed" in summary and "2 skipped" in summary and "1 xfailed" in summary, summary
    else:
        assert result.returncode == 1, result.stdout
        # The importorskip fails in the test's call, the marker in its setup (an error).
        assert "1 failed" in summary and "1 error" in summary and "1 passed" in summary, summary
        assert "skipped" not in summary, summary
        assert "1 xfailed" in summary  # an expected failure is not a skip
        assert "HELPDESK_REQUIRE_SERVICES=1 does not allow: could not import" in result.stdout
        assert "HELPDESK_REQUIRE_SERVICES=1 does not allow: marker" in result.stdout


@pytest.mark.parametrize("required", [False, True])
def test_a_module_skipped_at_collection_fails_the_run_under_the_ci_switch(tmp_path, required):
    result = inner_pytest(tmp_path, required, MODULE_SKIP)
    if not required:
        assert result.returncode == 5, result.stdout  # nothing ran, nothing failed
        assert "1 skipped" in result.stdout
    else:
        assert result.returncode != 0 and "error" in result.stdout.splitlines()[-1], result.stdout
        assert "does not allow: could not import 'another_module_that_is_not_installed'" in result.stdout
