# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both build .venv first: torch as TORCH names it, from pip's usual sources or from
# TORCH_INDEX, then sk_dml (the demo needs nothing more; `make test` adds the dev extras).
# `make demo` is a first look (under 20 s); `make demo-full` compares every loss on digits
# and letter (half an hour or more on a 2-core CPU). On Linux, PyPI's torch wheel is the multi-GB CUDA
# build; for the CPU build, give PyTorch's CPU index:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
# (The machines this project is developed on find the CPU wheel in their local wheel folder.)
# Changing TORCH or TORCH_INDEX later needs `make clean` first.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
PY := $(VENV)/bin/python

.PHONY: demo demo-full test docs clean

# torch and sk_dml with its own dependencies: what the demo runs on.
$(VENV)/.base-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	$(PY) -m pip install -q -e .
	touch $@

# The tests' and linters' tools on top (the dev extras).
$(VENV)/.installed: $(VENV)/.base-installed
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: $(VENV)/.base-installed
	$(PY) -m sk_dml demo

demo-full: $(VENV)/.base-installed
	$(PY) -m sk_dml demo --full

# Both test tiers: the fast default one (plain `pytest`), then the slow end-to-end one. The
# gallery examples run in `make docs` (CI), or with `pytest -m examples`.
test: $(VENV)/.installed
	$(PY) -m ruff check sk_dml tests benchmarks examples
	$(PY) -m ruff format --check sk_dml tests benchmarks examples
	$(PY) -m pytest -q
	$(PY) -m pytest -q -m slow

# The documentation (Sphinx, warnings as errors); the gallery runs the examples in quick mode.
$(VENV)/.docs-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[docs]"
	touch $@

docs: $(VENV)/.docs-installed
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) build *.egg-info docs/_build docs/auto_examples docs/generated demo_embedding.png
