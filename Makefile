# Two commands for a fresh machine with Python 3.11: `make run`, `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
export PLATFORM_HOME ?= $(CURDIR)/.platform
export DAGSTER_HOME := $(PLATFORM_HOME)/dagster
MANIFEST := dbt_project/target/manifest.json
DBT_SOURCES := $(shell find dbt_project/models dbt_project/macros dbt_project/tests -type f 2>/dev/null) dbt_project/dbt_project.yml dbt_project/profiles.yml

.PHONY: install run test ui bench clean manifest browser

# The install also prepares dbt's manifest (as `dagster-dbt project prepare-and-package` does for
# the image in deploy/): a build artifact of the project, rebuilt only when the dbt project changes.
install: $(INSTALLED) $(MANIFEST)

$(INSTALLED): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

# dagster-dbt reads the manifest when the definitions load; rebuilt only when the dbt project changes.
$(MANIFEST): $(INSTALLED) $(DBT_SOURCES)
	cd dbt_project && ../$(BIN)/dbt parse --quiet --profiles-dir .
	@touch $@

manifest: $(MANIFEST)

# MODELS="delay cancellation" replays both declared models (default: delay).
run: $(MANIFEST)
	$(BIN)/python -m platform_assets run $(if $(MODELS),--models $(MODELS))

# duckdb 2.0's nanobind bindings report "leaked instances" at interpreter exit, after pytest's
# summary; those lines are dropped so the summary stays the last line. pytest's exit code is kept.
NANOBIND_EXIT_NOISE := ^(nanobind: |See https://nanobind| - leaked | - \.\.\. skipped remainder)

# The browser test of the Dagster UI (tests/ui) drives Debian's chromium with playwright.
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

test: $(MANIFEST) browser
	set -o pipefail; $(BIN)/python -m pytest -q 2>&1 | grep -v -E '$(NANOBIND_EXIT_NOISE)'

# Dagster UI on :3000, with the MLflow UI (:5000) and PLATFORM_HOME/reports (:3001) served beside it,
# so the links in asset metadata open.
ui: $(MANIFEST)
	$(BIN)/python -m platform_assets ui

bench: $(MANIFEST)
	$(BIN)/python benchmarks/foundation.py

# The model server (KServe v1 and Open Inference v2 protocols) on 127.0.0.1:8080, routes per declared model: champion (and
# challenger) from the MLflow aliases, features from Feast's online store, every answer in the request
# log under PLATFORM_HOME. Rollout and canary share come from each model's defs.yaml (serving:);
# ROLLOUT=canary CANARY_PERCENT=20 overrides them for every model.
ROLLOUT ?=
CANARY_PERCENT ?=
.PHONY: serve
serve: $(INSTALLED)
	$(BIN)/python -m platform_assets.serving.server $(if $(ROLLOUT),--rollout $(ROLLOUT)) $(if $(CANARY_PERCENT),--canary-percent $(CANARY_PERCENT))

clean:
	rm -rf .platform dbt_project/target dbt_project/logs
