# The README's two commands: `make run` and `make test`. Each sets up .venv itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: run test browser bench fuzz clean

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

test: $(VENV)/.test browser
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check --no-cache src tests benchmarks
	$(PY) -m pytest -q

# The report's browser tests (tests/test_report_html.py) drive Debian's chromium through Playwright. When chromium
# is missing and this user may install it (root, or passwordless sudo), apt installs it, quietly; otherwise, or
# when apt fails, the tests skip and say how to enable them. This step never fails `make test`.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else echo "note: no chromium, and installing it needs root: the report's browser tests will skip"; exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "note: no chromium and no apt-get: the report's browser tests will skip"; exit 0; fi; \
	echo "installing chromium through apt for the report's browser tests"; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium \
	  >/dev/null 2>&1 || echo "note: apt could not install chromium: the report's browser tests will skip"

bench: $(VENV)/.bench
	$(PY) benchmarks/run_all.py

fuzz: $(VENV)/.test
	$(PY) benchmarks/fuzz_model_files.py --cases 200000

clean:
	rm -rf $(VENV) .pytest_cache
