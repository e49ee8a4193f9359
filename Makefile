# MicroStream: `make run` starts the product, `make test` runs the whole suite.
# Both install what they need into .venv/ first (idempotent).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: install run test lint typecheck format bench clean system-deps

install: $(STAMP)

$(STAMP): pyproject.toml setup.py src/microstream/book/_cside.c src/microstream/venues/binance/_cscan.c
	@command -v cc >/dev/null || command -v gcc >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		echo "no C compiler: installing gcc (for the compiled order book)"; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq gcc libc6-dev >/dev/null \
		|| echo "gcc could not be installed: the slower pure-Python order book will be used"; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Debian packages the browser test needs (Chromium); installed only when missing.
system-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi
	@test -x /usr/bin/chromium || { echo "Chromium could not be installed at /usr/bin/chromium"; exit 1; }

run: install
	$(BIN)/microstream run $(ARGS)

test: install system-deps
	$(BIN)/python -m pytest $(ARGS)

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

format: install
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

bench: install
	$(BIN)/microstream bench ../shared/data/binance/spot/btcusdt_20240808.gz ../shared/data/binance/spot/btcusdt_20240809.gz

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
