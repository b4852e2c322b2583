# The single source of developer commands; CI (.ci/run) calls `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test check lint typecheck docs docs-build catalog-doc rules-doc bench clean

# Silent (@) and on stderr, so that `make demo | jq` reads nothing but the demo's records.
$(STAMP): pyproject.toml
	@echo "make: creating the environment in $(VENV) with every extra (the first run takes a few minutes)" >&2
	@$(PYTHON) -m venv $(VENV) >&2
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip>=25.1" >&2
	@$(PY) -m pip install --quiet --disable-pip-version-check -e ".[django,flask,fastapi,datadog,otel,drf,allauth,hijack,impersonate,loginas,django-su,sqlalchemy,flask-security,fastapi-users,geoip,examples,celery,rq,dramatiq,arq,taskiq,detect-scale]" --group dev >&2
	@touch $(STAMP)

# One readable line per event, then the signals; `make demo DEMO_ARGS=--json | jq .` for the JSON lines.
demo: $(STAMP)
	@$(VENV)/bin/secevents demo $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests examples benchmarks
	$(VENV)/bin/ruff format --check src tests examples benchmarks

# src/ and tests/typing/ (the documented examples, which must type-check as users would write them) under
# mypy; the same plus examples/ under pyright (its settings and their reasons: [tool.pyright] in pyproject).
typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict src tests/typing
	$(VENV)/bin/pyright

# Serve the documentation at http://127.0.0.1:8000 and rebuild on change.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8000

# Build the documentation into site/; any warning (broken link, page missing from the nav) fails.
docs-build: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# docs/catalog.md is generated from the code's catalog; tests/test_docs.py fails when it is stale.
catalog-doc: $(STAMP)
	$(VENV)/bin/secevents catalog --format markdown > docs/catalog.md.tmp && mv docs/catalog.md.tmp docs/catalog.md

rules-doc: $(STAMP)
	$(PY) -m graffer_secevents._tools.rules docs/detection-rules.md

check: test lint typecheck docs-build

# Interleaved benchmarks: read the ratios (see docs/performance.md).
bench: $(STAMP)
	$(PY) benchmarks/bench_core.py
	$(PY) benchmarks/bench_metrics.py
	$(PY) benchmarks/bench_import.py
	$(PY) benchmarks/bench_bridges.py
	$(PY) benchmarks/bench_middleware.py
	$(PY) benchmarks/bench_drf_seams.py
	$(PY) benchmarks/bench_hostile.py
	$(PY) benchmarks/bench_detect.py
	$(PY) benchmarks/bench_origin.py
	$(PY) benchmarks/bench_detect_scale.py --records 1000000

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache site
