# The README's two commands: `make run` (set up, run the default benchmark, print the leaderboard)
# and `make test` (set up, run the test suite). Both start from nothing but python3.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch and torchvision are pinned to the builds on these machines' local index; elsewhere a normal install.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: setup run test test-fast speed mutation browser clean

$(BIN)/bench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

setup: $(BIN)/bench

# `bench run` prints the leaderboard; `bench report` writes report/index.html and says where.
run: setup
	$(BIN)/bench run; status=$$?; $(BIN)/bench report; exit $$status

# The browser test drives Debian's chromium; install it where we may (as root, with apt-get), else
# say why the test will be skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) ; } || \
	  echo "note: chromium could not be installed here; the browser test of bench report will be skipped"

# Two pytest workers (pytest-xdist): many end-to-end tests wait on subprocesses, signals and sleeps, so
# two overlap well even on two cores (the suite: 12.5 min in one process, 8 min in two).
TEST_JOBS ?= 2

test: setup browser
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist worksteal

# The inner loop: everything but the end-to-end runs (marked slow), in under two minutes on two cores.
test-fast: setup
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist worksteal -m "not slow"

# Mutation testing of the certificate path (slow; not part of `make test`): see [tool.mutmut] in
# pyproject.toml and mutation-equivalents.md.
mutation: setup
	$(BIN)/python -m pip install -q -e '.[test,mutation]'
	rm -rf mutants
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/mutmut run --max-children 2; $(BIN)/mutmut results --all true > mutation-results.txt; \
	  $(BIN)/python benchmarks/mutation_scores.py mutation-results.txt

# Throughput and speed benchmarks (pytest-benchmark); not part of `make test`.
speed: setup
	$(BIN)/python -m pytest benchmarks -o addopts="" -p no:cacheprovider

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks
