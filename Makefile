# The two README commands: `make serve` brings the service up on the bundled sample,
# `make test` runs the whole suite. Both create the virtual environment on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve serve-full test install

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/.installed

test: $(BIN)/.installed
	$(BIN)/python -m pytest

# Build demo models from the bundled sample when model_store/ has no archives, then
# run TorchServe and the facade on 127.0.0.1 until Ctrl-C. ARGS passes more options,
# e.g. `make serve ARGS=--rebuild` (see `python -m frontend_api stack --help`).
serve: $(BIN)/.installed
	$(BIN)/python -m frontend_api stack $(ARGS)

# The same with models trained on a full Kaggle download in FPS_DATA_ROOT; trains
# them with the training CLI first when runs/stack/full/ has no models yet.
serve-full: $(BIN)/.installed
	$(BIN)/python -m frontend_api stack --full $(ARGS)
