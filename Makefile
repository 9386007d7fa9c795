# Fresh machine: `make demo` runs the main job (replacing an earlier demo in $(OUT)),
# `make test` installs and runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= runs/demo

.PHONY: install test lint demo clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/tailseg demo --out $(OUT) --overwrite

clean:
	rm -rf $(VENV) runs build *.egg-info .pytest_cache .ruff_cache
