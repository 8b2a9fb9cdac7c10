# The README's two commands: `make demo` and `make test`. Each creates or
# reuses .venv and installs the pinned dependencies (constraints.txt) first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.churnwatch-installed

.PHONY: demo test bench install lock clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "churnwatch needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[embedded,test]'
	@touch $@

demo: $(STAMP)
	$(BIN)/churnwatch demo

test: $(STAMP)
	$(BIN)/python -m pytest

# Re-resolve the pins from pyproject.toml into constraints.txt (needs the index).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --disable-pip-version-check '.[embedded,test]'
	.lock-venv/bin/python -m pip freeze --exclude churnwatch > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info

# Benchmarks: prints one table of figures and writes bench-results.json.
bench: $(STAMP)
	$(BIN)/python -m bench
