# Two commands for a new user:  `make run`  (start the desk)  and  `make test`  (run the tests).
# Both install from the lock files (pinned versions with hashes), so every machine, the
# Docker image and CI get the same packages: `make run` the runtime only (requirements.lock),
# `make test` the runtime plus the test tools (requirements-test.lock). `make lock` refreshes
# both from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP_TOOLS := pip-tools==7.6.2
# pip-compile's options; the same for both lock files (see the README's dependency notes).
COMPILE := --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	--no-emit-find-links

.PHONY: install install-test run test lint lock clean

# The virtualenv itself (created once).
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# One stamp per kind of install: `make test` after `make run` still adds the test tools,
# and a changed lock file or pyproject.toml installs again.
$(BIN)/.installed-runtime: requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(BIN)/.installed-test: requirements-test.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -r requirements-test.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

install: $(BIN)/.installed-runtime

install-test: $(BIN)/.installed-test

## Start the API + web form + scheduler (+ the bot when TELEGRAM_BOT_TOKEN is set) on 127.0.0.1:8000
run: install
	$(BIN)/helpdesk run

## Lint, then run the whole test suite on SQLite and (when reachable) PostgreSQL, Redis, Chromium.
## In two worker processes by default (pytest-xdist): about 10 minutes on two cores, against
## 26-29 in one; `make test TEST_WORKERS=0` runs it in one (README, "Running the tests in parallel").
TEST_WORKERS ?= 2
test: install-test
	$(BIN)/ruff check api bootstrap bot core db scheduler telegram_delivery webhooks mail tests bench
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

lint: install-test
	$(BIN)/ruff check api bootstrap bot core db scheduler telegram_delivery webhooks mail tests bench

## Re-pin the dependencies after pyproject.toml changed (pins that still fit are kept);
## `make lock LOCK_FLAGS=--upgrade` takes every update, `LOCK_FLAGS="--upgrade-package X"` one.
## The test lock is compiled first; the runtime lock starts from its pins, so the two agree.
LOCK_FLAGS ?=
lock: export CUSTOM_COMPILE_COMMAND = make lock
lock: | $(BIN)/python
	$(BIN)/pip install -q $(PIP_TOOLS)
	$(BIN)/pip-compile $(COMPILE) $(LOCK_FLAGS) --extra test -o requirements-test.lock pyproject.toml
	cp requirements-test.lock requirements.lock
	$(BIN)/pip-compile $(COMPILE) -o requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) .pytest_cache
