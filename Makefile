# Two set-up commands on a fresh machine (Python 3.10+, a C compiler, pip access):
#   make demo   creates .venv, installs recsys with its Cython build, runs the main job
#   make test   same install, then the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# the shared data sets beside the repository, when present (tests and demo read them there)
SHARED_DATA := $(abspath ../shared/datasets)
ifeq ($(origin RECSYS_DATA_HOME), undefined)
ifneq ($(wildcard $(SHARED_DATA)),)
export RECSYS_DATA_HOME := $(SHARED_DATA)
endif
endif
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: install demo test test-slow bench bench-quick bench-peers bench-peers-torch clean

$(VENV)/.installed: setup.py pyproject.toml $(wildcard ext/*.pyx)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) pipelines/demo.py

test: install
	$(PY) -m ruff check .
	$(PY) -m pytest -q
	$(PY) -m pytest -q --nbmake --nbmake-timeout=600 notebooks/

test-slow: install
	$(PY) -m pytest -q --runslow

# Peers (Surprise, dwave-samplers) live in their own virtualenv, never in the project's. A
# failed install is not fatal: the benchmarks then list the peer as not run, with the reason.
PEERS := benchmarks/.peers
$(PEERS)/.installed: benchmarks/peers/requirements.txt
	-$(PYTHON) -m venv $(PEERS) && $(PEERS)/bin/python -m pip install --quiet -r $< && touch $@

bench-peers: $(PEERS)/.installed

# RecBole + CPU torch (bench_simplex.py): a separate virtualenv, installed by hand (not in CI:
# off these machines pip may fetch a CUDA torch of several GB)
TORCH_PEERS := benchmarks/.peers-torch
$(TORCH_PEERS)/.installed: benchmarks/peers/requirements-torch.txt
	-$(PYTHON) -m venv $(TORCH_PEERS) && $(TORCH_PEERS)/bin/python -m pip install --quiet -r $< && touch $@

bench-peers-torch: $(TORCH_PEERS)/.installed

bench-quick: install bench-peers
	$(PY) benchmarks/bench_topk.py --quick
	$(PY) benchmarks/bench_evaluation.py --quick
	$(PY) benchmarks/bench_ease.py --quick
	$(PY) benchmarks/bench_altmin.py --quick
	$(PY) benchmarks/bench_nmf.py --quick
	$(PY) benchmarks/bench_simplex.py --quick

bench: install bench-peers bench-peers-torch
	$(PY) benchmarks/bench_topk.py
	$(PY) benchmarks/bench_evaluation.py
	$(PY) benchmarks/bench_ease.py
	$(PY) benchmarks/bench_altmin.py
	$(PY) benchmarks/bench_nmf.py
	$(PY) benchmarks/bench_simplex.py

clean:
	rm -rf $(VENV) $(PEERS) build *.egg-info recsys/_ext/*.so ext/*.c
