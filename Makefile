# TagPortal — the two commands: `make run` (portal with demo data) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run serve test install install-dev lint check pytest browser bench clean messages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## make run: install, migrate, create roles and demo users (logins printed), apply templates, serve.
run: install
	DEBUG=true $(BIN)/python manage.py migrate --no-input
	DEBUG=true $(BIN)/python manage.py bootstrap_demo
	@echo "TagPortal: http://$(HOST):$(PORT)/   API docs: http://$(HOST):$(PORT)/api/docs/"
	@echo "Journeys (营销旅程): http://$(HOST):$(PORT)/journeys/"
	DEBUG=true $(BIN)/python manage.py runserver $(HOST):$(PORT)

## make serve: production (DEBUG off; set SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL …): collectstatic,
## migrate, gunicorn on $(HOST):$(PORT), plus a Celery worker and beat when CELERY_BROKER_URL is set.
serve: install
	HOST=$(HOST) PORT=$(PORT) PYTHON=$(BIN)/python bin/serve

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check: install-dev
	DEBUG=true $(BIN)/python manage.py check
	DEBUG=true $(BIN)/python manage.py makemigrations --check --dry-run
	DEBUG=true $(BIN)/python manage.py check_templates

# The browser tests drive Debian's Chromium (never a downloaded browser build).
# fonts-noto-cjk: without it Chinese renders as boxes in screenshots.
browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "noto.*cjk"; then \
	  echo "Installing Debian's chromium and fonts-noto-cjk for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	fi

# Integration tests (a real Celery worker on PostgreSQL and Redis) run in .ci/run's PostgreSQL pass.
PYTEST_ARGS ?= -n 2 -m "not integration"
pytest: install-dev browser
	$(BIN)/pytest $(PYTEST_ARGS)

## make test: install with dev extras, ruff, manage.py check, makemigrations --check, pytest.
test: lint check pytest

bench: install-dev
	$(BIN)/python benchmarks/changelist.py
	$(BIN)/python benchmarks/compute.py
	$(BIN)/python benchmarks/reports.py
	$(BIN)/python benchmarks/audiences.py
	$(BIN)/python benchmarks/predictive.py
	$(BIN)/python benchmarks/deliveries.py
	@# 10M people / 100M events on two Celery workers: hours, PostgreSQL and Redis (see its --help)
	@if [ -n "$$DATABASE_URL" ]; then $(BIN)/python benchmarks/scale.py; \
	else echo "benchmarks/scale.py skipped: it needs DATABASE_URL (PostgreSQL) and Redis"; fi

messages: install-dev
	DEBUG=true $(BIN)/python manage.py makemessages -l zh_Hans --ignore=.venv --ignore=staticfiles
	DEBUG=true $(BIN)/python manage.py compilemessages --ignore=.venv

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
