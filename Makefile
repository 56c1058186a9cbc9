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

.PHONY: install demo test test-slow bench bench-quick clean

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

test-slow: install
	$(PY) -m pytest -q --runslow

bench-quick: install
	$(PY) benchmarks/bench_topk.py --quick
	$(PY) benchmarks/bench_evaluation.py --quick
	$(PY) benchmarks/bench_ease.py --quick
	$(PY) benchmarks/bench_altmin.py --quick

bench: install
	$(PY) benchmarks/bench_topk.py
	$(PY) benchmarks/bench_evaluation.py
	$(PY) benchmarks/bench_ease.py
	$(PY) benchmarks/bench_altmin.py

clean:
	rm -rf $(VENV) build *.egg-info recsys/_ext/*.so ext/*.c
