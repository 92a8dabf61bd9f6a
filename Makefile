# Two entry points that set everything up on a fresh machine with Python 3.11:
#   make book   -> .venv + requirements, executes the chapters, writes _build/html/index.html
#   make test   -> .venv + requirements, unit tests, every chapter under nbval, book build + Chromium
#   make test-fast -> same set-up, only the quick unit tests (no chapters, book build, browser, Ray or slow
#                     scientific tests): 2 min 47 s on 2 cores
#   make lab    -> .venv + requirements, JupyterLab on the chapters (widgets work: ipywidgets 8 + JupyterLab 4)
# Options: make book PROFILE=smoke|default|paper   (default: $NADLIB_PROFILE, else default)
#          make test PYTEST_ARGS="-k notebooks -x"
#   make mutants -> mutation score of the core and science modules (mutmut, requirements-dev.txt; not part of make test/CI)

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements-installed
PROFILE ?= $(or $(NADLIB_PROFILE),default)
PYTEST_ARGS ?=
TEST_WORKERS ?= 2

LAB_ARGS ?=

.PHONY: help install book test test-fast lab mutants clean distclean

help:
	@echo "make book [PROFILE=smoke|default|paper]  build the book into _build/html/index.html"
	@echo "make test                                run the whole test suite (smoke profile)"
	@echo "make test-fast                           only the quick unit tests (no chapters/book/browser/Ray/slow)"
	@echo "make lab [PROFILE=...] [LAB_ARGS=...]     open JupyterLab on the chapters in book/"
	@echo "make install                             only create .venv and install requirements.txt"
	@echo "make mutants                             mutation score, 13 modules (mutmut, a few hours on 2 cores)"
	@echo "make clean                               remove _build/ (forces the chapters to re-execute)"
	@echo "make distclean                           also remove .venv/"

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "error: python3.11 (or python3) not found" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the requirements (or the package metadata) changed.
$(STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	touch $@

install: $(STAMP)

# BOOK_OUT: the folder that receives _build/ (default: here); the tests build into a temporary one, so
# that no execution cache is reused.
BOOK_OUT ?= .

book: $(STAMP)
	mkdir -p $(BOOK_OUT)/_build
	set -eo pipefail; NADLIB_PROFILE=$(PROFILE) $(BIN)/jupyter-book build -n -W --keep-going \
	  --path-output $(BOOK_OUT) . 2>&1 | tee $(BOOK_OUT)/_build/book-build.log
	@echo "book ($(PROFILE) profile): $(abspath $(BOOK_OUT))/_build/html/index.html"

# Unit tests and the book build/Chromium check live in tests/; nbval runs every chapter in book/.
# TEST_WORKERS pytest-xdist processes (default 2, the CI's cores; 0 runs in this process); a test file or a
# chapter stays in one process (--dist loadfile: a notebook's cells run in order in one kernel), in the
# order of tests/conftest.py (longest first; --no-loadscope-reorder keeps it).
test: $(STAMP)
	set -eo pipefail; export NADLIB_PROFILE=smoke; \
	  $(BIN)/python -m pytest tests book --nbval-lax --nbval-current-env --nbval-cell-timeout=600 \
	  -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -ra $(PYTEST_ARGS)

# The quick unit tests: no chapters (nbval), no book build (-m book), no Ray (-m ray), no slow tests (-m slow:
# scientific claims, end-to-end CLI runs), no headless Chromium (the *_in_a_browser tests; JupyterLab's is slow).
test-fast: $(STAMP)
	set -eo pipefail; export NADLIB_PROFILE=smoke; \
	  $(BIN)/python -m pytest tests -p no:nbval -m "not slow and not book and not ray" -k "not in_a_browser" \
	  -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -ra $(PYTEST_ARGS)

# JupyterLab on the chapters; the kernel is this .venv (nadlib editable), the profile is PROFILE.
lab: $(STAMP)
	NADLIB_PROFILE=$(PROFILE) $(BIN)/jupyter lab --notebook-dir=book $(LAB_ARGS)

# Mutation testing (settings: [tool.mutmut] in pyproject.toml; judged survivors: tests/MUTANTS.md).
# MUTANTS_WORKERS workers (default 1; one per free core), one torch thread each, low priority, from scratch every time (mutmut keeps old verdicts of unchanged code
# even when the tests changed, so a reused mutants/ can understate the score).  The score is printed by
# tools/mutation_score.py (MUTANTS_ARGS=--survivors also lists the surviving mutants).
DEV_STAMP := $(VENV)/.dev-requirements-installed
MUTANTS_ARGS ?=
MUTANTS_WORKERS ?= 1

$(DEV_STAMP): requirements-dev.txt | $(STAMP)
	$(BIN)/python -m pip install -r requirements-dev.txt
	touch $@

mutants: $(STAMP) $(DEV_STAMP)
	rm -rf mutants
	set -eo pipefail; export NADLIB_PROFILE=smoke OMP_NUM_THREADS=1 NADLIB_TEST_THREADS=1; \
	  nice -n 10 $(BIN)/mutmut run --max-children $(MUTANTS_WORKERS)
	$(BIN)/python tools/mutation_score.py $(MUTANTS_ARGS)

clean:
	rm -rf _build

distclean: clean
	rm -rf $(VENV)
