# The two set-up commands of a fresh machine:
#   make demo   install, then evaluate the embedded SmolLM2-135M-Instruct on TRACE (2 items per task)
#               with the embedded smoke-test judge, offline, and print the results it wrote
#   make test   install with the dev tools, then run the test suite
VENV ?= .venv
# Offline machines read the benchmark files from a local mirror; elsewhere they are downloaded.
DATA_MIRROR ?= $(firstword $(IOPO_EVAL_DATA_MIRROR) $(wildcard ../shared/data))
export IOPO_EVAL_DATA_MIRROR := $(DATA_MIRROR)
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install install-dev demo test lint

install:
	VENV=$(VENV) scripts/install.sh

install-dev:
	VENV=$(VENV) scripts/install.sh dev

demo: install
	$(VENV)/bin/iopo-eval run --tasks trace --limit 2 --gen-kwargs max_gen_toks=256 --output runs/demo
	@cat "$$(ls -td runs/demo/*/ | head -1)results.json"

test: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q -p no:cacheprovider

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
