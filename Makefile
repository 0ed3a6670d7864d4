# Two commands do all the set-up: `make demo` and `make test` (see README.md).
VENV   := .venv
PY     := $(VENV)/bin/python
SUM    := $(shell cksum pyproject.toml | cut -d' ' -f1)
CORE   := $(VENV)/.core-$(SUM)
FULL   := $(VENV)/.full-$(SUM)
# A Python >= 3.12: PYTHON=... when given, else python3.12 / python3.13 on PATH, else pyenv's.
ifndef PYTHON
PYTHON := $(shell for p in python3.12 python3.13 $$HOME/.pyenv/versions/3.12.*/bin/python \
            $$HOME/.pyenv/versions/3.13.*/bin/python; do \
            $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
            && { command -v $$p; break; }; done)
endif

.PHONY: demo test lint bench clean system-deps docs screenshots

# The venv, (re)made with $(PYTHON) when missing or older than Python 3.12.
define venv
	@test -n "$(PYTHON)" || { echo "make: no Python >= 3.12 found (python3.12, python3.13 on" \
	  "PATH, ~/.pyenv/versions/3.12.*, 3.13.*): install one, or run make PYTHON=/path/to/it" >&2; \
	  exit 1; }
	test -x $(PY) && $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))' \
	  || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
endef

# What `liftlab analyze`, `report` and `demo` need, nothing more.
$(CORE): pyproject.toml
	$(venv)
	$(PY) -m pip install -q -e .
	rm -f $(VENV)/.core-* && touch $@

# The test environment: the core and every extra (test, sql, spark, mmm, targeting, bench).
$(FULL): pyproject.toml
	$(venv)
	$(PY) -m pip install -q -e '.[test,sql,spark,mmm,targeting,bench]'
	$(PY) -m pip check
	rm -f $(VENV)/.full-* $(VENV)/.core-* && touch $@ $(CORE)

## Generate the demo retailer, analyse every example experiment, write the daily report.
demo: $(CORE)
	$(VENV)/bin/liftlab demo --out demo

## Full-page PNGs of every page of the demo's reports (with the day before, so "since
## yesterday" has something to compare) into docs/screenshots/.
SHOT_DATE := 2026-02-24
SHOT_PREV := 2026-02-23
screenshots: $(FULL) system-deps
	$(VENV)/bin/liftlab demo --out demo
	$(VENV)/bin/liftlab report --data demo/data --out demo/reports --date $(SHOT_PREV)
	$(VENV)/bin/liftlab report --data demo/data --out demo/reports --date $(SHOT_DATE)
	$(PY) scripts/screenshots.py demo/reports/$(SHOT_DATE) docs/screenshots
	$(PY) scripts/screenshots.py demo/pressure/reports/2026-04-27 demo/pressure/screenshots
	cp demo/pressure/screenshots/experiment-*.png docs/screenshots/

## System packages the tests drive (headless Chromium); installed only when missing.
system-deps:
	bash scripts/system-deps.sh

## Lint, check the layers (pyproject.toml, tool.importlinter), run the whole suite, then the
## built wheel in a clean venv (tests/test_wheel.py).
test: $(FULL) system-deps
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -n 2 --dist loadfile -q
	LIFTLAB_SLOW=1 $(VENV)/bin/pytest -q -p no:xdist tests/test_wheel.py

lint: $(FULL)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

## Regenerate docs/yaml.md and docs/cli.md (tests fail when they are stale).
docs: $(FULL)
	$(PY) scripts/gen_docs.py

## Whole commands on every data layout at 2 M and 10 M customers (README, Performance).
bench: $(FULL)
	$(PY) benchmarks/bench_whole.py

clean:
	rm -rf $(VENV) demo reports/*/ .pytest_cache
