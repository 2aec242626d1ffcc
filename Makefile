# Two commands matter: `make demo` and `make test`. Everything else is a step they use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)

export PYTHONPATH := $(CURDIR)/plugins
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
PLE := $(BIN)/python -m ple.cli

.PHONY: help venv db stop fixture airflow-db demo test lint approve lint-plan report clean bench-fixture bench-reorg bench-dol airflow airflow-stop browser-deps test-browser

help:
	@echo "make demo    build everything and run the DAGs on an embedded PostgreSQL"
	@echo "make test    run the whole test suite (it starts its own PostgreSQL)"
	@echo "make fixture SCALE=1.0   (re)build the PLE database on ctb_postgres"
	@echo "make lint    ruff, with the Airflow (AIR) rules"
	@echo "make approve APPROVER=<name>   approve the exact current CTB plan file"
	@echo "make lint-plan / make report   the plan lint / the ledger report, on ctb_postgres"
	@echo "make bench-fixture / bench-reorg / bench-dol   the benchmarks (full size)"
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
	$(PLE) fixture --scale $(SCALE) --replace --verbose

airflow-db: venv
	@mkdir -p $(AIRFLOW_HOME)
	@$(BIN)/airflow db migrate >$(AIRFLOW_HOME)/db-migrate.log 2>&1 || (cat $(AIRFLOW_HOME)/db-migrate.log; exit 1)

demo: export AIRFLOW_CONN_CTB_POSTGRES := $(EMBEDDED_DSN)
demo: export PLE_TASK_RETRY_DELAY_SECONDS := 1
demo: db airflow-db
	$(PLE) demo

test: venv
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Record that APPROVER approved the exact current plan file (in ctb_postgres: ple_ops.plan_approval).
approve: db
	@test -n "$(APPROVER)" || (echo "usage: make approve APPROVER=<your name>"; exit 2)
	$(PLE) approve --approver "$(APPROVER)"

lint-plan: db
	$(PLE) lint

report: db
	$(PLE) report

clean: stop
	rm -rf .airflow .pgdata

bench-fixture: db
	$(BIN)/python bench/fixture_build.py --scale $(or $(BENCH_SCALE),1.0)

bench-reorg: db
	$(BIN)/python bench/reorganization.py --scale $(or $(BENCH_SCALE),1.0) --small-scale $(or $(BENCH_SMALL_SCALE),0.1)

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
