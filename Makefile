# artist-id: the two commands a fresh machine needs are `make repro` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
# One stamp per kind of install, named after the requirements: editing them re-installs.
DEPS   := $(shell cat pyproject.toml constraints.txt 2>/dev/null | cksum | cut -d' ' -f1)
STAMP  := $(VENV)/.installed-dev-$(DEPS)
RUN_STAMP := $(VENV)/.installed-run-$(DEPS)
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt
NEW_VENV := test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)

# Stage commands in dvc.yaml call `python`: make it the venv's, whatever the caller's PATH.
export PATH := $(abspath $(BIN)):$(PATH)

# Offline by design: no telemetry from DVC, Great Expectations or BentoML.
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false
export BENTOML_DO_NOT_TRACK := true
export TF_CPP_MIN_LOG_LEVEL := 3
export KERAS_BACKEND := tensorflow

.PHONY: install install-run repro test lint format clean bento serve report plots-template data-docs-assets params-format readme-dag

BENTO_MODEL := models/bento/artist-id.tar
GENRE_MODEL := models/bento/artist-id-genre.tar

install: $(STAMP)  ## create .venv and install the project with its dev tools (tests, lint)

install-run: $(RUN_STAMP)  ## create .venv and install the project alone (pipeline, service)

# The full install satisfies both; the project alone skips the dev tools (pytest, mypy, ruff,
# selenium, ...), which `make repro` does not need: a quicker first run.
$(STAMP): pyproject.toml constraints.txt
	@$(NEW_VENV)
	$(PIP) -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@ $(RUN_STAMP)

$(RUN_STAMP): pyproject.toml constraints.txt
	@$(NEW_VENV)
	$(PIP) -e .
	@rm -f $(VENV)/.installed-run-*
	@touch $@

repro: install-run  ## run the whole DVC pipeline (offline, on the embedded sample by default)
	$(BIN)/dvc repro

# Two pytest-xdist workers: much of the suite waits on subprocesses and imports, so two
# workers finish sooner even on two cores. Tests sharing an expensive fixture stay in one
# worker (tests/conftest.py). TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 2
test: install  ## the whole test suite (unit, data, model, service, e2e)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope

BASE ?= main
report: install-run  ## compare the workspace's experiment with BASE (a git revision): reports/pr/report.md
	$(BIN)/python -m artist_id.report --base "$(BASE)" $(if $(RUN_URL),--run-url "$(RUN_URL)")

bento: install-run  ## import the packaged models (artist + genre) into the BentoML store and build the Bento
	@for f in $(BENTO_MODEL) $(GENRE_MODEL); do test -f $$f || { echo "$$f is missing: run 'make repro' first" >&2; exit 1; }; done
	$(BIN)/python -m artist_id.packaging import $(BENTO_MODEL) $(GENRE_MODEL)
	$(BIN)/bentoml build

# `make serve` listens on this machine only; HOST=0.0.0.0 opens it to the network (a container
# publishes its port that way), PORT=8080 moves it.
HOST ?= 127.0.0.1
PORT ?= 3000

serve: bento  ## serve the Bento on http://$(HOST):$(PORT) (Ctrl+C to stop)
	$(BIN)/bentoml serve artist_id:latest --host $(HOST) --port $(PORT)

lint: install  ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

params-format: install  ## rewrite params.yaml the way `dvc exp run -S` does (DVC's own writer)
	$(BIN)/python -c "from dvc.utils.hydra import apply_overrides; apply_overrides('params.yaml', [])"

readme-dag: install  ## put `dvc dag --md` (the pipeline as a Mermaid graph) into README.md
	$(BIN)/python -m tools.readme_dag

plots-template: install  ## re-vendor vega/vega-lite/vega-embed into .dvc/plots/offline.html (needs npm)
	$(BIN)/python -m tools.plots_template build

data-docs-assets: install  ## re-vendor what GX's Data Docs load from CDNs into src/artist_id/data_docs_assets (needs npm)
	$(BIN)/python -m tools.data_docs_assets build

clean:  ## remove caches (not the DVC cache)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis
