# ember: set-up, tests, demo, benchmarks, docs.
# Every target creates .venv when it is missing. torch==2.13.0 (a local CPU
# build on these machines) is installed first unless a torch is importable,
# so pip never pulls a multi-GB CUDA wheel to satisfy "torch>=2.1".
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ember-installed

.PHONY: setup test demo bench docs lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,plot]'
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q --doctest-modules ember tests

demo: $(STAMP)
	$(PY) -m ember demo

bench: $(STAMP)
	$(PY) -c "import pyro" 2>/dev/null || $(PY) -m pip install --quiet --no-deps pyro-ppl==1.9.2 pyro-api
	$(PY) -c "import numpyro" 2>/dev/null || $(PY) -m pip install --quiet numpyro || true  # optional column
	for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

# sphinx comes from the `docs` extra; installed only when missing (needs network once)
docs: $(STAMP)
	$(PY) -c "import sphinx" 2>/dev/null || $(PY) -m pip install --quiet -e '.[docs]'
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html
	@echo "API reference: docs/_build/html/index.html"

lint: $(STAMP)
	$(PY) -m ruff check ember tests benchmarks examples

clean:
	rm -rf $(VENV) build dist *.egg-info docs/_build demo_output
