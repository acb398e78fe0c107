# Set-up is part of every target: a fresh clone needs only `make run` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test bench fuzz lint install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/dbquery migrate
	$(BIN)/dbquery serve

# pytest's own exit status is kept in .venv/pytest-status so .ci/run can explain it
# (make itself reports any failure as 2).
test: install-dev
	@$(BIN)/pytest $(PYTEST_ARGS); status=$$?; echo $$status > $(VENV)/pytest-status; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests (exit status 5); that is a failure"; fi; \
	exit $$status

bench: install-dev
	$(BIN)/python benchmarks/export_pg.py
	$(BIN)/python benchmarks/export_mongo.py
	$(BIN)/python benchmarks/ack.py
	$(BIN)/python benchmarks/deliver.py
	$(BIN)/python benchmarks/analysis_sandbox.py
	$(BIN)/python benchmarks/parse_mongo.py
	$(BIN)/python benchmarks/estimate.py
	$(BIN)/python benchmarks/api.py

# The long run of the /slack/events fuzz test (the suite runs 1,500 examples).
FUZZ_EXAMPLES ?= 20000
fuzz: install-dev
	DBQUERY_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q -s -p no:cacheprovider tests/bot/test_fuzz_events.py

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
