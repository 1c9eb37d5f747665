# The two set-up commands (each creates .venv when missing):
#   make run    install and run the main job on the embedded CPU default
#   make test   install (with the optional anny extra, so its renderer is tested too) and run the tests
VENV ?= .venv
PYTHON ?= python3
# A CPU build of torch 2.13.0 is what posegen is developed and tested with.
TORCH ?= torch==2.13.0
BIN = $(VENV)/bin

.PHONY: run test install clean

$(BIN)/posegen: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/posegen

run: install
	$(BIN)/posegen run $(ARGS)

test: install
	$(BIN)/python -c "import anny" 2>/dev/null || $(BIN)/pip install -q -e '.[dev,anny]'
	$(BIN)/python -m pytest -q $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
