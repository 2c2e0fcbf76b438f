# The README's commands. `make train` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CI and the development machine pin torch/torchvision (constraints/ci.txt); users get the open
# ranges of pyproject.toml unless they pass CONSTRAINTS=constraints/ci.txt.
CONSTRAINTS ?=
CONFIG ?= configs/default.yaml
DATA_DIR ?= data
ARGS ?=
PIP_CONSTRAINT_FLAG := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)

.PHONY: install test lint train smoke find-lr bench clean-venv

# Machines without a GPU: TORCH_INDEX=https://download.pytorch.org/whl/cpu installs PyTorch's CPU
# wheels first, without the CUDA libraries (see README, "CPU fallback").
TORCH_INDEX ?=

$(BIN)/supercon: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet torch torchvision --index-url $(TORCH_INDEX),)
	$(BIN)/python -m pip install --quiet $(PIP_CONSTRAINT_FLAG) -e '.[dev]'
	@touch $@

install: $(BIN)/supercon  ## create .venv and install the package with the dev extra

# The tests also cover the optional extras (the Ray executor): installed for them only.
$(VENV)/.test-extras: $(BIN)/supercon
	$(BIN)/python -m pip install --quiet $(PIP_CONSTRAINT_FLAG) -e '.[dev,ray]'
	@touch $@

lint: install  ## ruff check + ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint $(VENV)/.test-extras  ## lint, then the test suite (pytest's 5, "no tests collected", is not a failure)
	$(BIN)/python -m pytest -q || [ $$? -eq 5 ]

# With ARGS="--resume RUN" the run's own config applies: no --config then.
train: install  ## the assignment run: make train [CONFIG=...] [DATA_DIR=...] [ARGS="--epochs 24"]
	$(BIN)/supercon train $(if $(findstring --resume,$(ARGS)),,--config $(CONFIG)) --data-dir $(DATA_DIR) $(ARGS)

smoke: install  ## a few minutes on CPU: make smoke DATA_DIR=data/cifar10-png
	$(BIN)/supercon train --config configs/cpu-smoke.yaml --data-dir $(DATA_DIR) --no-progress $(ARGS)

find-lr: install  ## LR range test: make find-lr [CONFIG=...] [DATA_DIR=...] [ARGS=...]
	$(BIN)/supercon find-lr --config $(CONFIG) --data-dir $(DATA_DIR) $(ARGS)

bench: install  ## CPU benchmarks: input pipeline and training-loop overhead
	$(BIN)/python scripts/bench_data.py --data-dir $(DATA_DIR)
	$(BIN)/python scripts/bench_overhead.py --data-dir $(DATA_DIR)
