# Two commands for a new user:  `make run`  (start the desk)  and  `make test`  (run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test lint bench-fill bench-rest clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/.installed

## Start the API + web form + scheduler (+ the bot when TELEGRAM_BOT_TOKEN is set) on 127.0.0.1:8000
run: install
	$(BIN)/helpdesk run

## Lint, then run the whole test suite on SQLite and (when reachable) PostgreSQL, Redis, Chromium
test: install
	$(BIN)/ruff check api bootstrap bot core db scheduler telegram_delivery webhooks mail tests bench
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check api bootstrap bot core db scheduler telegram_delivery webhooks mail tests bench

clean:
	rm -rf $(VENV) .pytest_cache
