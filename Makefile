# Two entry points for a fresh machine: `make run` (the main job) and `make test`.
# Both install the exact versions in uv.lock (the set the suite passed with) into .venv/.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# uv from the PATH, else a pinned copy installed from PyPI into .tools/ (only Python and make needed).
UV_VERSION := 0.13.9
UV ?= $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
# A Python of this machine, never one downloaded by uv.
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test test-fast data install lock test-latest bench clean

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet uv==$(UV_VERSION)

# `--locked` fails if uv.lock no longer matches pyproject.toml, rather than resolving anew.
$(BIN)/.installed: uv.lock pyproject.toml | $(UV)
	$(UV) sync --locked --compile-bytecode --extra test --python $(PYTHON)
	touch $@

install: $(BIN)/.installed

# Local data first (Debian's dataset-fashion-mnist, $INITOPT_DATA_DIR, the cache), else download.
data: install
	@$(BIN)/initopt data >/dev/null 2>&1 || $(BIN)/initopt data --download

run: data
	$(BIN)/initopt train --optimizer adam

# Everything, the slowest 15 named (what CI runs).
test: install
	$(BIN)/python -m pytest -q --durations=15

# In-process, tiny configs, one compile cache: what to run after every change (under 3 minutes).
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" --durations=10

# The newest release of every dependency, in a venv of its own: the suite, the README's commands
# included (tests/test_readme.py). Run it before `make lock`, which moves the lock to those releases.
test-latest: | $(UV)
	rm -rf .venv-latest
	$(UV) venv --quiet --python $(PYTHON) .venv-latest
	$(UV) pip install --quiet --compile-bytecode --python .venv-latest/bin/python --upgrade -e '.[test]'
	$(UV) pip list --python .venv-latest/bin/python
	.venv-latest/bin/python -m pytest -q

lock: | $(UV)
	$(UV) lock --upgrade --python $(PYTHON)

bench: data
	$(BIN)/python benchmarks/train_speed.py

clean:
	rm -rf $(VENV) .venv-latest .tools build *.egg-info
