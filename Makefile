# Entry points: `make demo` (the whole pipeline offline on generated data), `make test` (the test
# suite, which trains, packages and converts one registry entry per family) and `make test-zoo`
# (every other registry entry trains one step, packages, and converts to TFLite or falls back to
# Keras; about 25 minutes on 2 cores). All create or reuse .venv and install into it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.codapack-installed

.PHONY: demo test test-zoo install clean

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

test-zoo: $(STAMP)
	CODAPACK_FULL_ZOO=1 $(BIN)/python -m pytest -q -ra tests/test_zoo_registry.py -k "trains_one_step or converts_to_tflite"

clean:
	rm -rf $(VENV) demo_output .codapack build *.egg-info
