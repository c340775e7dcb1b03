# Two entry points for a fresh machine: `make run` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test data install bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

# Local data first (Debian's dataset-fashion-mnist, $INITOPT_DATA_DIR, the cache), else download.
data: install
	@$(BIN)/initopt data >/dev/null 2>&1 || $(BIN)/initopt data --download

run: data
	$(BIN)/initopt train --optimizer adam

test: install
	$(BIN)/python -m pytest -q

bench: data
	$(BIN)/python benchmarks/train_speed.py

clean:
	rm -rf $(VENV) build *.egg-info
