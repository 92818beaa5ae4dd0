# The two commands a newcomer needs: `make demo` and `make test`. Both need only python3 (3.11+).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lock test test-fast lint demo simulator bench clean

# The versions installed are the ones in requirements.lock (the resolved set the tests last passed with).
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev,demo]'
	touch $(STAMP)

install: $(STAMP)

# After changing a dependency in pyproject.toml: resolve again (needs the package index) and commit the lock.
lock:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --all-extras --universal --python-version 3.11 --no-header --quiet \
		-o requirements.lock

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Every test but the long reliability runs (what .ci/run and the README call): end to end over real sockets, real
# PostgreSQL and S3, in parallel workers. Most tests wait on a simulator, a server or a child process rather than
# compute, so more workers than cores pay off; worksteal keeps them all busy to the end.
PYTEST_WORKERS ?= 6
# Tests marked `timing` assert a pace in scaled wall-clock time (a Precoro second of 0.1 s or less): they run
# afterwards, alone, since six busy workers can delay a request by more than a scaled second.
test: $(STAMP) lint
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist worksteal -m "not reliability and not timing"
	$(BIN)/pytest -q -m "timing and not reliability"

# The edit loop, under 2 minutes: pure tests, definition loading, the engine and the simulator in-process (no socket,
# no child process: `pytest --fast` refuses them).
test-fast: $(STAMP)
	$(BIN)/pytest -q --fast -n 2

# The simulator and the Dagster UI on http://127.0.0.1:3000, ready to launch a backfill (Ctrl-C stops both).
demo: $(STAMP)
	$(BIN)/precoro-assets demo

simulator: $(STAMP)
	$(BIN)/precoro-assets simulator --port 8787 --seed 7

# Requests per record, 429s, quota behaviour, throughput and memory, side by side with dlt (about 42 min on
# 2 cores; e.g. `make bench BENCH_ARGS="--sizes 10k"` for a shorter run). Writes bench/results/latest.md/.json.
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache
