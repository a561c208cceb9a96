# Two commands on a fresh machine with Python 3.11 and make: `make run`, `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: run test test-e2e test-faults bench lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.test-installed: requirements.txt requirements-test.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@ $(VENV)/.runtime-installed

## run: the CRM on http://127.0.0.1:$(PORT)/admin/ with DEBUG on and demo data
run: export DEBUG := 1
run: $(VENV)/.runtime-installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo_superuser
	$(BIN)/python manage.py seed_demo --if-empty --history
	exec $(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

## test: the whole suite except the slow end-to-end tests (DATABASE_URL picks the database)
test: $(VENV)/.test-installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## test-e2e: the slow end-to-end tests with real servers
test-e2e: $(VENV)/.test-installed
	$(BIN)/python -m pytest -m e2e $(PYTEST_ARGS)

## test-faults: database fault injection on private PostgreSQL and MariaDB servers the tests start
test-faults: $(VENV)/.test-installed
	$(BIN)/python -m pytest -m faults $(PYTEST_ARGS)

## bench: the benchmarks (DATABASE_URL picks the database); a table, and tmp/bench/<database>.json
bench: $(VENV)/.test-installed
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.test-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) tmp .pytest_cache .ruff_cache
