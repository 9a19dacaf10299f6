# factorcast: `make run` and `make test` do all set-up themselves.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
DATA ?= ../shared/data/bittrex-5m

.PHONY: run test lint typecheck layers pytest bench replay schema clean system-deps

# Servers the integration tests run for real: redis-server (and redis-benchmark for
# bench/publish.py), Prometheus with promtool, and tmux (the terminal the live table
# is checked in), from Debian, when missing.
SYSTEM_TOOLS := redis-server:redis-server redis-benchmark:redis-tools promtool:prometheus prometheus:prometheus tmux:tmux

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "installing python3-venv"; rm -rf $(VENV); \
	  apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

run: $(STAMP)
	$(BIN)/factorcast run $(ARGS)

replay: $(STAMP)
	$(BIN)/factorcast replay --data $(DATA) $(ARGS)

schema: $(STAMP)
	$(BIN)/factorcast schema

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy reads `factorcast.*` through a link to the repository root (it does not run the
# editable install's import hook); its paths therefore start with build/typecheck/.
TYPECHECK := build/typecheck
typecheck: $(STAMP)
	@mkdir -p $(TYPECHECK) && ln -sfn ../.. $(TYPECHECK)/factorcast
	MYPYPATH=$(TYPECHECK):bench $(BIN)/mypy -p factorcast.factors -p factorcast.strategy \
	  -p factorcast.adapters $(patsubst bench/%.py,-m %,$(wildcard bench/*.py))

layers: $(STAMP)
	$(BIN)/lint-imports

system-deps:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $$missing >/dev/null; \
	fi

pytest: $(STAMP) system-deps
	$(BIN)/python -m pytest $(ARGS)

test: lint typecheck layers pytest

bench: $(STAMP)
	$(BIN)/python bench/replay.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
