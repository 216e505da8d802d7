# Set-up and entry points. `make test` and `make demo` are self-contained on a fresh machine:
# each installs what is missing first (idempotent; a second run takes seconds).
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
STAMP := .install.stamp

.PHONY: install system-deps test test-fast demo clean-install

install: $(STAMP)

# Debian packages for the synthetic corpus (espeak-ng, flite); skipped when present or when not root.
system-deps:
	@if command -v espeak-ng >/dev/null 2>&1 && command -v flite >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng flite >/dev/null; \
	else echo "warning: espeak-ng/flite missing and cannot apt-get install them; synthvox will be unavailable"; fi

$(STAMP): pyproject.toml Makefile
	$(MAKE) system-deps
	$(PIP) install -q "torch==2.14.1" "torchaudio==2.11.0"
	$(PIP) install -q -e ".[test]"
	# resemblyzer only ships the GE2E weights we load ourselves; its webrtcvad dependency needs a C build and
	# imports pkg_resources, so take the package alone and the maintained webrtcvad wheel beside it.
	$(PIP) install -q --no-deps "resemblyzer==0.1.4" "webrtcvad-wheels>=2.0.14"
	touch $(STAMP)

test: install
	$(PYTHON) -m pytest -q

test-fast: install
	$(PYTHON) -m pytest -q -m "not slow"

demo: install
	bash egs/synthvox/run.sh

clean-install:
	rm -f $(STAMP)
