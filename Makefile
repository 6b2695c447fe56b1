# The README's two commands: `make run` (set up, run the default benchmark, print the leaderboard)
# and `make test` (set up, run the test suite). Both start from nothing but python3.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch and torchvision are pinned to the builds on these machines' local index; elsewhere a normal install.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: setup run test speed clean

$(BIN)/bench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

setup: $(BIN)/bench

run: setup
	$(BIN)/bench run

test: setup
	$(BIN)/python -m pytest

# Throughput and speed benchmarks (pytest-benchmark); not part of `make test`.
speed: setup
	$(BIN)/python -m pytest benchmarks -o addopts="" -p no:cacheprovider

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks
