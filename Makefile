# Two commands do everything:
#   make demo   set up, then run the default policy over the bundled sample transcripts
#   make test   set up, then run the whole test suite (lint, types, tests)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/policylang lint policies/
	$(BIN)/policylang check policies/default.policy samples/conversations.jsonl

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy --strict policylang
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache
