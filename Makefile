# The two set-up commands of a fresh machine:
#   make demo   install, then evaluate the embedded SmolLM2-135M-Instruct on TRACE (2 items per task)
#               with the embedded smoke-test judge, offline; print the summary, the results folder and
#               the file:// path of the leaderboard page built for the run
#   make test   install with the dev tools, then run ruff, mypy (scripts/typecheck.sh) and the test suite
VENV ?= .venv
# Offline machines read the benchmark files from a local mirror; elsewhere they are downloaded.
DATA_MIRROR ?= $(firstword $(IOPO_EVAL_DATA_MIRROR) $(wildcard ../shared/data))
# Absolute, so that processes started in other folders (lm_eval runs in the tests) find it too.
export IOPO_EVAL_DATA_MIRROR := $(abspath $(DATA_MIRROR))
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install install-dev demo test lint typecheck

install:
	VENV=$(VENV) scripts/install.sh

install-dev:
	VENV=$(VENV) scripts/install.sh dev

demo: install
	$(VENV)/bin/iopo-eval run --tasks trace --limit 2 --gen-kwargs max_gen_toks=256 --output runs/demo \
		--leaderboard runs/demo-site || test $$? -eq 3  # 3: some items unjudged (reported above)

test: install-dev
	$(VENV)/bin/ruff check .
	VENV=$(VENV) scripts/typecheck.sh
	$(VENV)/bin/pytest -q -p no:cacheprovider

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

typecheck:
	VENV=$(VENV) scripts/typecheck.sh
