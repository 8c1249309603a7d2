# Ticketflow: every command works on a fresh machine with Python 3.11, git and make.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)/include:$(CURDIR)

# Debian packages: Chromium for the browser tests, Redis for the Celery stack, faketime for the year-ahead run.
# Installed when missing and we may (root with apt-get); otherwise the tests that need them skip and say why.
SYSTEM_PACKAGES := chromium redis-server faketime

.PHONY: run run-celery test lint migrate shell psql bench venv clean system-packages

# The local environment has the runtime and the development tools (the image gets requirements.txt only).
$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m devstack.stack run

# Redis only, and only when no external one is named.
run-celery: $(STAMP)
	@if [ -z "$$TICKETFLOW_REDIS_URL" ]; then $(MAKE) --no-print-directory system-packages SYSTEM_PACKAGES=redis-server; fi
	$(BIN)/python -m devstack.stack run --celery

system-packages:
	@missing=""; for package in $(SYSTEM_PACKAGES); do command -v $$package >/dev/null 2>&1 || missing="$$missing $$package"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "make: installing$$missing (Debian packages)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null; } \
			|| echo "make: could not install$$missing; the tests that need it are skipped"; \
	else echo "make: missing$$missing (apt-get install$$missing as root); the tests that need it are skipped"; fi

# The Celery tests (their own PostgreSQL, Redis and workers; mostly waiting on timeouts) run beside the
# rest of the suite in a second pytest process, so the whole suite takes the longer of the two, not the sum.
# Lint and types: they catch what would crash at run time (an undefined name) before any test runs it.
RUFF := $(BIN)/ruff check dags include plugins devstack tests bench
lint: $(STAMP)
	$(RUFF)
	$(BIN)/mypy

# Four suites side by side, so the whole takes the longest of them: the unit, DAG and integration tests; the
# end-to-end tests but the Celery ones (a real `make run`, mostly waiting on Airflow); the Celery tests (their
# own stack, mostly waiting on the faults they cause); and the unit, DAG and integration
# tests again with the clock a year ahead (libfaketime moves Python's and PostgreSQL's clocks), which fails
# any test that depends on the date it runs. libfaketime is preloaded into pytest itself, not through the
# faketime wrapper, so that stopping make test stops that pytest too.
# ruff first (a second); mypy (half a minute from a fresh clone) runs beside the suites.
test: $(STAMP) system-packages
	$(RUFF)
	@mkdir -p .local; \
	$(BIN)/mypy > .local/mypy.log 2>&1 & types=$$!; \
	$(BIN)/python -m pytest -m celery -p no:cacheprovider > .local/celery-tests.log 2>&1 & celery=$$!; \
	faketime_lib=$$(ls /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1 2>/dev/null | head -n 1); \
	if [ -n "$$faketime_lib" ]; then \
		TICKETFLOW_TEST_PG=test-pg-year-ahead LD_PRELOAD=$$faketime_lib FAKETIME=+365d \
			$(BIN)/python -m pytest -p no:cacheprovider tests/unit tests/dags tests/integration \
			> .local/year-ahead-tests.log 2>&1 & ahead=$$!; \
	else echo "make: libfaketime missing (apt-get install faketime as root): the year-ahead run is skipped" \
		> .local/year-ahead-tests.log; ahead=""; fi; \
	TICKETFLOW_TEST_PG=test-pg-e2e $(BIN)/python -m pytest -m "not celery" -p no:cacheprovider tests/e2e \
		> .local/e2e-tests.log 2>&1 & e2e=$$!; \
	trap 'kill -TERM $$types $$celery $$ahead $$e2e 2>/dev/null; wait; exit 130' INT TERM; \
	$(BIN)/python -m pytest tests/unit tests/dags tests/integration; status=$$?; \
	wait $$types; types_status=$$?; wait $$e2e; e2e_status=$$?; wait $$celery; celery_status=$$?; \
	ahead_status=0; if [ -n "$$ahead" ]; then wait $$ahead; ahead_status=$$?; fi; \
	echo "== mypy (.local/mypy.log)"; cat .local/mypy.log; \
	echo "== the end-to-end tests but the Celery ones (.local/e2e-tests.log)"; cat .local/e2e-tests.log; \
	echo "== the Celery tests (.local/celery-tests.log)"; cat .local/celery-tests.log; \
	echo "== unit, DAG and integration tests with the clock a year ahead (.local/year-ahead-tests.log)"; \
	tail -n 30 .local/year-ahead-tests.log; \
	exit $$(( status || types_status || e2e_status || celery_status || ahead_status ))

migrate: $(STAMP)
	$(BIN)/python -m devstack.stack migrate

shell: $(STAMP)
	$(BIN)/python -m devstack.stack shell $(if $(CELERY),--celery)

psql: $(STAMP)
	$(BIN)/python -m devstack.stack psql

# Every script in bench/ (or ONLY=<name>), each one's output kept in .local/bench/; then docs/benchmarks.md is
# written from them, with the date and the machine.
bench: $(STAMP)
	@mkdir -p .local/bench; status=0; \
	for script in $(if $(ONLY),bench/$(ONLY).py,bench/[!_]*.py); do \
		name=$$(basename $$script .py); echo "== $$script"; \
		$(BIN)/python $$script > .local/bench/$$name.log 2>&1 || status=1; cat .local/bench/$$name.log; \
	done; \
	$(BIN)/python bench/_report.py .local/bench $(ONLY) || status=1; exit $$status

clean:
	rm -rf .local
