"""Dependencies: the lock files agree with pyproject.toml, `make run` / the Dockerfile install
the runtime only and `make test` / CI the test tools too, and time zones work without the
operating system's zone files (slim images), legacy names included."""

from __future__ import annotations

import re
import tomllib
import zoneinfo
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from core.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
TEST_ONLY = {"pytest", "pytest-asyncio", "hypothesis", "playwright", "ruff", "httpx"}  # websockets: sanic


def lock(name: str) -> dict[str, tuple[str, int]]:
    """`requirements*.lock` as {package: (version, number of hashes)}."""
    pins: dict[str, tuple[str, int]] = {}
    for entry in re.split(r"\n(?=\S)", (ROOT / name).read_text(encoding="utf-8")):
        first = entry.split("\\", 1)[0].strip()
        if not first or first.startswith("#"):
            continue
        package, _, version = first.partition("==")
        assert version, f"{name}: {first!r} is not pinned with =="
        pins[canonicalize_name(package)] = (version.strip(), entry.count("--hash=sha256:"))
    return pins


def check_pinned(requirements: list[str], pins: dict[str, tuple[str, int]], name: str) -> None:
    for line in requirements:
        req = Requirement(line)
        key = canonicalize_name(req.name)
        assert key in pins, f"{req.name} is in pyproject.toml but not in {name}: run `make lock`"
        version = pins[key][0]
        assert req.specifier.contains(version, prereleases=True), (
            f"{name} pins {req.name}=={version}, outside pyproject's {req.specifier}: run `make lock`"
        )


def test_runtime_lock_pins_every_runtime_dependency_with_hashes_and_no_test_tool():
    runtime = lock("requirements.lock")
    check_pinned(PYPROJECT["dependencies"], runtime, "requirements.lock")
    assert all(hashes for _, hashes in runtime.values()), "every pin carries its hashes"
    assert not TEST_ONLY & set(runtime), "test tools must not reach `make run` or the image"


def test_test_lock_is_the_runtime_lock_plus_the_test_tools():
    runtime, full = lock("requirements.lock"), lock("requirements-test.lock")
    check_pinned(PYPROJECT["dependencies"] + PYPROJECT["optional-dependencies"]["test"],
                 full, "requirements-test.lock")
    assert all(hashes for _, hashes in full.values())
    # The same versions in both: tests run against what production installs.
    differ = {p: (v, full.get(p, ("missing",))[0]) for p, (v, _) in runtime.items()
              if full.get(p, ("",))[0] != v}
    assert not differ, f"runtime and test locks disagree: {differ}; run `make lock`"


def test_tzdata_is_a_runtime_dependency():
    names = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["dependencies"]}
    assert "tzdata" in names


def test_installs_use_the_locks():
    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    runtime_stamp = re.search(r"^\$\(BIN\)/\.installed-runtime:.*?(?=^\S)", make, re.M | re.S)[0]
    test_stamp = re.search(r"^\$\(BIN\)/\.installed-test:.*?(?=^\S)", make, re.M | re.S)[0]
    assert "-r requirements.lock" in runtime_stamp and "--no-deps -e ." in runtime_stamp
    assert "test" not in runtime_stamp.split(":", 1)[1], "`make run` installs the runtime only"
    assert "-r requirements-test.lock" in test_stamp and "--no-deps -e ." in test_stamp
    assert re.search(r"^run: install$", make, re.M)
    assert re.search(r"^test: install-test$", make, re.M)
    docker = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "pip install --require-hashes -r requirements.lock" in docker
    assert re.findall(r"pip install (?!--require-hashes)(.*)", docker) == ["--no-deps . && rm -rf build *.egg-info"]
    assert "requirements-test.lock" not in docker
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.rstrip().endswith("make test")  # the README's command, so CI installs the test lock


@pytest.fixture
def zone_files_absent():
    """zoneinfo as on a slim image without /usr/share/zoneinfo: only the tzdata package."""
    zoneinfo.reset_tzpath(to=[])
    zoneinfo.ZoneInfo.clear_cache()
    try:
        yield
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()


@pytest.mark.parametrize(("name", "july_offset_hours"),
                         [("Europe/Kiev", 3), ("US/Eastern", -4), ("Europe/Moscow", 3)])
def test_time_zone_setting_accepts_legacy_names_without_system_zone_files(
    zone_files_absent, name, july_offset_hours
):
    settings = load_settings({"TZ": name}, dotenv=False)
    assert settings.tz == name
    zone = zoneinfo.ZoneInfo(settings.tz)  # what the scheduler and the stats build from it
    assert datetime(2024, 7, 1, 12, tzinfo=zone).utcoffset() == timedelta(hours=july_offset_hours)
