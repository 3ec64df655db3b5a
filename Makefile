# Two entry points: `make demo` (the whole pipeline offline on generated data)
# and `make test` (the test suite). Both create or reuse .venv and install into it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.codapack-installed

.PHONY: demo test install clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/codapack demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra

clean:
	rm -rf $(VENV) demo_output .codapack build *.egg-info
