# The two commands a newcomer needs: `make demo` and `make test`. Both need only python3 (3.11+).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo simulator bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) lint
	$(BIN)/pytest -q

# The simulator and the Dagster UI on http://127.0.0.1:3000, ready to launch a backfill (Ctrl-C stops both).
demo: $(STAMP)
	$(BIN)/precoro-assets demo

simulator: $(STAMP)
	$(BIN)/precoro-assets simulator --port 8787 --seed 7

# Requests per record, 429s, quota behaviour, throughput and memory, side by side with dlt (about 15 min on
# 2 cores; e.g. `make bench BENCH_ARGS="--sizes 10k"` for a shorter run). Writes bench/results/latest.md/.json.
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
