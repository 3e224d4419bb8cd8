# The two commands a person needs: `make demo` (bring up the local environment from nothing)
# and `make test` (the whole suite). Both set themselves up first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The static-analysis scanners (checkov) live in a venv of their own: checkov pins boto3,
# packaging and cloudsplaining versions that clash with the project's (requirements-scanners.in).
SCANNERS := .venv-scanners
SCANNERS_STAMP := $(SCANNERS)/.installed

.PHONY: setup demo test lint bench synth down clean lock layers

setup: $(STAMP) $(SCANNERS_STAMP) node_modules/.installed layers

# The functions' Lambda layers, from pinned wheels for their runtime (stacks/layers.py): built
# once into a content-addressed cache (~/.cache/mlops-platform/layers), which synth only reads.
layers: $(STAMP)
	$(BIN)/mlops layers build

# Re-installs only when the pinned dependencies change. uv installs the locked set (every
# transitive version pinned in requirements.lock, from pyproject.toml's pins by `make lock`) in
# seconds where pip takes minutes; the versions are the same either way.
UV_VERSION := 0.13.8
UV := $(BIN)/uv
$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (Python 3.11 is required)" >&2; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(UV) pip install --quiet --python $(BIN)/python -r requirements.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

# The same for the scanners' venv, from its own lock; uv comes from the project's venv.
$(SCANNERS_STAMP): requirements-scanners.lock $(STAMP)
	test -x $(SCANNERS)/bin/python || $(PYTHON) -m venv $(SCANNERS)
	$(UV) pip install --quiet --python $(SCANNERS)/bin/python -r requirements-scanners.lock
	touch $@

# Re-resolve the lock files after changing a pin in pyproject.toml or requirements-scanners.in
# (needs the registry).
lock: $(STAMP)
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 --universal --quiet \
		--custom-compile-command "make lock" -o requirements.lock
	$(UV) pip compile requirements-scanners.in --python-version 3.11 --universal --quiet \
		--custom-compile-command "make lock" -o requirements-scanners.lock

# The cdktf CLI from npm, pinned by package-lock.json, so `npx cdktf synth|deploy` works too.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The main job on the local AWS: `mlops demo` brings the local environment up from nothing by
# real Terraform and plays the whole control loop (train, gate, canary, known-good, a broken
# model caught by the canary, drift, retrain, a rollback drill), one live line per phase. The
# cdktf npm CLI is not needed for it (the mlops CLI synthesizes in Python). The start time is
# taken before the set-up so the summary counts the set-up too.
demo: export MLOPS_DEMO_STARTED_AT := $(shell $(PYTHON) -c 'import time; print(time.time())' 2>/dev/null)
demo: $(STAMP) layers
	$(BIN)/mlops demo

# Two workers on CI's two cores: the end-to-end modules (local AWS applies, the demo) play in
# order on one while the unit and integration modules run on the other, a module per worker at a
# time (tests/conftest.py's scheduler: a module is a scope, tests/e2e one scope, queued first).
test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 --dist loadscope --no-loadscope-reorder --durations=15

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Benchmarks compare against baselines measured in the same run; Evidently (the drift baseline)
# is a benchmark-only dependency, installed here and never by `setup`.
bench: setup
	$(UV) pip install --quiet --python $(BIN)/python -c requirements.lock -e ".[dev,bench]"
	$(BIN)/python benchmarks/synth.py
	$(BIN)/python benchmarks/drift.py
	$(BIN)/python benchmarks/drift_false_alarms.py
	$(BIN)/python benchmarks/handlers.py
	$(BIN)/python benchmarks/serving.py

synth: $(STAMP) layers
	$(BIN)/mlops synth

down: $(STAMP) layers
	$(BIN)/mlops local down

clean:
	-$(BIN)/mlops local down
	rm -rf cdktf.out .mlops .pytest_cache
