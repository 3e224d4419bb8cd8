# The two commands a person needs: `make demo` (bring up the local environment from nothing)
# and `make test` (the whole suite). Both set themselves up first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench synth down clean

setup: $(STAMP) node_modules/.installed

# Re-installs only when the pinned dependencies change.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (Python 3.11 is required)" >&2; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

# The cdktf CLI from npm, pinned by package-lock.json, so `npx cdktf synth|deploy` works too.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The main job on the local AWS: the environment by real Terraform, then the control loop: a
# training run whose model the gate approves and the deploy handler serves, then a rollback drill.
demo: setup
	$(BIN)/mlops local up
	$(BIN)/mlops pipeline run --env local --project demo
	$(BIN)/mlops drill rollback --env local --project demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Benchmarks compare against baselines measured in the same run; Evidently (the drift baseline)
# is a benchmark-only dependency, installed here and never by `setup`.
bench: setup
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python benchmarks/synth.py
	$(BIN)/python benchmarks/drift.py
	$(BIN)/python benchmarks/drift_false_alarms.py
	$(BIN)/python benchmarks/handlers.py
	$(BIN)/python benchmarks/serving.py

synth: setup
	$(BIN)/mlops synth

down: setup
	$(BIN)/mlops local down

clean:
	-$(BIN)/mlops local down
	rm -rf cdktf.out .mlops .pytest_cache
