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

.PHONY: install demo test docs test-float test-slow bench bench-quick bench-peers bench-peers-torch clean

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
	$(MAKE) docs

# the documentation site, warnings as errors, and every example on it run as a doctest
docs: install
	$(PY) -m pytest -q -p no:cacheprovider --doctest-glob="*.rst" docs
	$(PY) -m sphinx -E -W --keep-going -q -b html docs docs/_build/html

# tests whose results depend on BLAS kernels and thread counts (run by .ci/run under several
# OpenBLAS core types and OMP_NUM_THREADS values)
FLOAT_TESTS := tests/test_topk.py tests/test_models.py tests/test_ease.py tests/test_altmin.py \
	tests/test_nmf.py tests/test_nbmf.py tests/test_metrics.py tests/test_evaluation.py \
	tests/test_robustness.py tests/test_model_api.py
test-float: install
	$(PY) -m pytest -q -p no:cacheprovider $(FLOAT_TESTS)

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

# the whole suite (python -m benchmarks run: every script, then benchmarks/README.md and plots);
# quick = small sizes, the CI smoke run (page in benchmarks/results/quick/)
bench-quick: install bench-peers
	$(PY) -m benchmarks run --quick

bench: install bench-peers bench-peers-torch
	$(PY) -m benchmarks run

clean:
	rm -rf $(VENV) $(PEERS) build *.egg-info recsys/_ext/*.so ext/*.c docs/_build docs/_generated
