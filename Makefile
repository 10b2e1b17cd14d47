# Two commands for a fresh machine: `make lab` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: lab test test-slow unit notebooks lint format upgrade clean-venv

$(BIN)/python:
	$(PYTHON) lessons/toolkit/check_python.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# Jupyter refuses to start as root unless told; containers and CI machines often run as root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks $(ROOT_FLAG) $(LAB_ARGS)

# Unit tests and every notebook under nbval (stored outputs compared), on 2 workers.
test: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not slow" \
		--nbval --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg \
		tests notebooks

# The heavier scenario runs (marked slow): the whole fault matrix, many-stream scenarios.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -m slow tests

unit: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) tests

# Re-execute every notebook in place: refreshes the stored outputs that nbval compares.
notebooks: $(STAMP)
	$(BIN)/python -m lessons.toolkit.notebooks execute notebooks/*.ipynb

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Re-resolve requirements.in to the newest releases in a scratch venv, write the lock, run the suite.
upgrade:
	rm -rf .venv-upgrade
	$(PYTHON) -m venv .venv-upgrade
	.venv-upgrade/bin/python -m pip install --quiet --upgrade pip
	.venv-upgrade/bin/python -m pip install --quiet -r requirements.in
	{ echo "# The lock: exact versions the whole suite last passed with."; \
	  echo "# Regenerate with \`make upgrade\` (re-resolves requirements.in to the newest releases and runs the suite)."; \
	  .venv-upgrade/bin/python -m pip freeze --exclude-editable | grep -v '^streaming-llm-responses'; \
	  echo "-e ."; } > requirements.txt
	rm -rf .venv-upgrade
	$(MAKE) test

clean-venv:
	rm -rf $(VENV)
