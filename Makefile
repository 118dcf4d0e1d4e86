# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both build .venv first: CPU torch from the pinned wheel (a plain `pip install torch` would
# download a multi-GB CUDA build), then sk_dml with its extras.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test docs clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	$(PY) -m sk_dml demo

test: $(VENV)/.installed
	$(PY) -m ruff check sk_dml tests benchmarks examples
	$(PY) -m ruff format --check sk_dml tests benchmarks examples
	$(PY) -m pytest -q

# The documentation (Sphinx, warnings as errors); the gallery runs the examples in quick mode.
$(VENV)/.docs-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[docs]"
	touch $@

docs: $(VENV)/.docs-installed
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) build *.egg-info docs/_build docs/auto_examples docs/generated
