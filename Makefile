# Two commands do all the set-up: `make demo` and `make test` (see README.md).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PYTHON ?= python3

.PHONY: demo test lint bench clean system-deps docs screenshots

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,sql,spark]'
	rm -f $(VENV)/.installed-* && touch $@

## Generate the demo retailer, analyse every example experiment, write the daily report.
demo: $(STAMP)
	$(VENV)/bin/liftlab demo --out demo

## Full-page PNGs of every page of the demo's report (with the day before, so "since
## yesterday" has something to compare) into docs/screenshots/.
SHOT_DATE := 2026-02-24
SHOT_PREV := 2026-02-23
screenshots: $(STAMP) system-deps
	$(VENV)/bin/liftlab demo --out demo
	$(VENV)/bin/liftlab report --data demo/data --out demo/reports --date $(SHOT_PREV)
	$(VENV)/bin/liftlab report --data demo/data --out demo/reports --date $(SHOT_DATE)
	$(PY) scripts/screenshots.py demo/reports/$(SHOT_DATE) docs/screenshots

## System packages the tests drive (headless Chromium); installed only when missing.
system-deps:
	bash scripts/system-deps.sh

## Lint and run the whole suite.
test: $(STAMP) system-deps
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/pytest -n 2 --dist loadfile -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

## Regenerate docs/yaml.md and docs/cli.md (tests fail when they are stale).
docs: $(STAMP)
	$(PY) scripts/gen_docs.py

## The scale benchmark at 1 M customers (README, Performance).
bench: $(STAMP)
	$(PY) benchmarks/bench_scale.py --customers 1000000 --skip-pandas

clean:
	rm -rf $(VENV) demo reports/*/ .pytest_cache
