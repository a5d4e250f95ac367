# The README's two commands: `make run` and `make test`. Each sets up .venv itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: run test bench fuzz clean

$(VENV)/.core: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[sklearn,plot]'
	touch $@

$(VENV)/.test: $(VENV)/.core
	$(PIP) -e '.[sklearn,plot,test]'
	touch $@

$(VENV)/.bench: $(VENV)/.test
	$(PIP) -e '.[bench]'
	touch $@

run: $(VENV)/.core
	$(VENV)/bin/deltaprop train

test: $(VENV)/.test
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check --no-cache src tests benchmarks
	$(PY) -m pytest -q

bench: $(VENV)/.bench
	$(PY) benchmarks/run_all.py

fuzz: $(VENV)/.test
	$(PY) benchmarks/fuzz_model_files.py --cases 200000

clean:
	rm -rf $(VENV) .pytest_cache
