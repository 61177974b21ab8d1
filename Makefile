# Two commands for a new user: `make demo` (install + run the demo end to end) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build by default (a local wheel on the course machines); on a GPU box: make TORCH=torch
TORCH ?= torch==2.13.0

.PHONY: install demo demo-clf test test-fast bench bench-accuracy bench-gpu-kit bench-gpu clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

demo: install
	$(VENV)/bin/harness demo

demo-clf: install
	$(VENV)/bin/harness -w demo-clf demo --task classification

# two workers (pytest-xdist), each test on one thread: most of the suite is single-threaded
# Python (imports, tokenising, subprocesses), so one process left the second core half idle
test: install
	$(PY) -m pytest -q -n 2 --dist worksteal --durations=20

test-fast: install
	$(PY) -m pytest -q -n 2 --dist worksteal -m "not slow"

# every speed ratio at CPU size (~10 min on 2 cores), then a summary of the ratio lines
bench: install
	$(PY) bench/run_all.py $(BENCH_ARGS)

# accuracy vs Trainer on a real pretrained model: make bench-accuracy ACCURACY_ARGS="--track qa --scale smoke"
bench-accuracy: install
	$(PY) bench/accuracy.py $(ACCURACY_ARGS)

# here, before a GPU session: wheels, fp16 MiniLM and data into work/gpu-kit (at most 60 MiB)
bench-gpu-kit: install
	$(PY) bench/gpu/gather.py

# on the GPU machine (its python3 has torch; nothing is installed from the network); device tool:
#   run(command="bash bench/gpu/run.sh", carry=["work/gpu-kit"], timeout_s=600)
# CPU smoke run: make bench-gpu GPU_PY=.venv/bin/python BENCH_GPU_SMOKE=1
GPU_PY ?= python3
bench-gpu:
	PYTHON=$(GPU_PY) bash bench/gpu/run.sh

clean:
	rm -rf runs studies work result.csv submissions/*.csv submissions/*.json leaderboard/*.sqlite*
