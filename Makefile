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
DEMO_DATA ?= data/synthetic-demo
# The demo's search: the cpu preset (the halving strategy: up to 16 stand-alone candidates, the better ones
# trained longer) on 64-px crops, the size the demo's retrain trains on, under a latency budget relative to this
# machine's prices: networks priced within [0.8, 1] x 0.2 x the mean of random networks (--target-scale: the same
# band on every CPU, 30-38 ms on a Zen 1 EPYC), ranked by the best validation IoU so far with ties (candidates
# whose IoU is still 0) broken by the validation pixels' average precision (--signal best_val_iou_ap). The
# two-stage quick preset did not find networks better than random ones at CPU budgets (docs/results.md).
# --rungs 2:8:3 as given: the preset scales its rungs to the training split's size (530 images -> 2:8:3), which
# on the demo's 128 training images would be 8:33:3, beyond the demo's 15 minutes. --time-limit 5: the candidates
# train for at most 5 minutes (fewer of the 16 on a slower machine), scored on 16 validation images. At 0.4 x the
# mean (56-76 ms) no candidate's IoU left 0 within 8 epochs on that Zen 1 and the search kept a network that its
# retrain never got past predicting background (0 % test IoU); at 0.2 x the mean all 16 train within the limit.
DEMO_SEARCH ?= --preset cpu --crop-size 64 --rungs 2:8:3 --val-images 16 --signal best_val_iou_ap \
	--latency-loss hinge --target-scale 0.2 --floor 0.8 --time-limit 5

.PHONY: venv demo test clean-venv

$(BIN)/hnanas: pyproject.toml constraints-cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(PIP_ARGS) -c constraints-cpu.txt -e ".[test]"
	touch $@

venv: $(BIN)/hnanas

# One pytest worker per core (pytest-xdist); --dist loadfile keeps a file's tests, and its module fixtures, on one
# worker. The suite sets torch to one thread per test, so two workers fill a 2-core machine (8.3 min there against
# 16.5 min in one process, Zen 1 EPYC). TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= auto

test: venv
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The main job end to end on synthetic data: price this machine (`profile quick`, cached per CPU; the shipped
# table was measured on another CPU) -> search (cpu preset) -> retrain -> report. Rerunning continues an
# interrupted demo (search and retrain resume) and skips the steps already done. The retrain chooses its decision
# threshold on the validation images (--select-threshold): the demo's small networks can learn to segment with
# probabilities capped below 0.5 (a 1x1 head whose weights all turned negative), which scored 0 % at 0.5
# (docs/results.md, "The demo").
demo: venv
	$(RUN) data synth --out $(DEMO_DATA) --n 200 --size 256 --seed 0
	$(RUN) data check $(DEMO_DATA)
	$(RUN) profile quick --space rep_nested
	@if [ -f $(DEMO_OUT)/genotype.json ]; then echo "demo: search already done in $(DEMO_OUT)"; \
	elif [ -f $(DEMO_OUT)/config.yaml ]; then $(RUN) search --out $(DEMO_OUT) --resume; \
	else $(RUN) search --dataset $(DEMO_DATA) $(DEMO_SEARCH) --out $(DEMO_OUT); fi
	@if [ -f $(DEMO_OUT)/retrain/metrics.json ]; then echo "demo: retrain already done in $(DEMO_OUT)/retrain"; \
	elif [ -f $(DEMO_OUT)/retrain/model.json ]; then $(RUN) retrain --run $(DEMO_OUT) --resume; \
	else $(RUN) retrain --run $(DEMO_OUT) --preset quick --select-threshold; fi
	$(RUN) report $(DEMO_OUT)
	@echo "demo: done; the report is $(DEMO_OUT)/index.md (figures in $(DEMO_OUT)/figures/, runs table in $(DEMO_OUT)/runs.md)"

clean-venv:
	rm -rf $(VENV)
