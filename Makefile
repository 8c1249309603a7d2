# Ticketflow: every command works on a fresh machine with Python 3.11, git and make.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)/include:$(CURDIR)

# Debian packages: Chromium for the dashboard's browser test, Redis for the Celery stack.
# Installed when missing and we may (root with apt-get); otherwise the tests that need them skip and say why.
SYSTEM_PACKAGES := chromium redis-server

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
# Lint and types first: they take seconds and catch what would crash at run time (an undefined name).
lint: $(STAMP)
	$(BIN)/ruff check dags include plugins devstack tests bench
	$(BIN)/mypy

test: lint system-packages
	@mkdir -p .local; \
	$(BIN)/python -m pytest -m celery -p no:cacheprovider > .local/celery-tests.log 2>&1 & celery=$$!; \
	trap 'kill -TERM $$celery 2>/dev/null; wait $$celery; exit 130' INT TERM; \
	$(BIN)/python -m pytest -m "not celery"; status=$$?; \
	wait $$celery; celery_status=$$?; \
	echo "== the Celery tests (.local/celery-tests.log)"; cat .local/celery-tests.log; \
	exit $$(( status || celery_status ))

migrate: $(STAMP)
	$(BIN)/python -m devstack.stack migrate

shell: $(STAMP)
	$(BIN)/python -m devstack.stack shell $(if $(CELERY),--celery)

psql: $(STAMP)
	$(BIN)/python -m devstack.stack psql

bench: $(STAMP)
	@set -e; for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script; done

clean:
	rm -rf .local
