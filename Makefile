# Ticketflow: every command works on a fresh machine with Python 3.11, git and make.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)/include

.PHONY: run test migrate bench venv clean

$(STAMP): requirements.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m ticketflow.dev.stack run

test: $(STAMP)
	$(BIN)/python -m pytest

migrate: $(STAMP)
	$(BIN)/python -m ticketflow.dev.stack migrate

bench: $(STAMP)
	@set -e; for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script; done

clean:
	rm -rf .local
