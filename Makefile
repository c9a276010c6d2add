# Set-up and the two entry points of the README: `make demo` (the main job, end to end, on synthetic data)
# and `make test` (the test suite). Each creates the virtual environment when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Extra pip arguments, e.g. PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu" on a CPU machine
# without a local torch wheel.
PIP_ARGS ?=
# tcmalloc speeds CPU training ~1.6x and steadies timings (Debian: apt-get install libtcmalloc-minimal4).
TCMALLOC := $(firstword $(wildcard /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 /usr/lib64/libtcmalloc_minimal.so.4 /usr/lib/libtcmalloc_minimal.so.4))
RUN := $(if $(TCMALLOC),LD_PRELOAD=$(TCMALLOC) )$(BIN)/hnanas
DEMO_OUT ?= runs/demo

.PHONY: venv demo test clean-venv

$(BIN)/hnanas: pyproject.toml constraints-cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(PIP_ARGS) -c constraints-cpu.txt -e ".[test]"
	touch $@

venv: $(BIN)/hnanas

test: venv
	$(BIN)/python -m pytest -q

demo: venv
	$(RUN) data synth --out data/synthetic-demo --n 200 --size 256 --seed 0
	$(RUN) data check data/synthetic-demo
	@echo "demo: done; outputs under data/synthetic-demo"

clean-venv:
	rm -rf $(VENV)
