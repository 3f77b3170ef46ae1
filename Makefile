# The two commands a newcomer needs: `make run` and `make test`. Everything else is created on demand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install lint test bench run clean

# Reinstall when the project metadata changes; the stamp keeps repeated runs fast.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check pdp tests benchmarks
	$(BIN)/ruff format --check pdp tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: install
	$(BIN)/python -m benchmarks

run: install
	$(BIN)/pdp lint policies
	$(BIN)/pdp check --policies policies --request examples/requests/purchase-alcohol-16.json --explain

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
