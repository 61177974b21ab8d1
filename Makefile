# Two commands for a new user: `make demo` (install + run the demo end to end) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build by default (a local wheel on the course machines); on a GPU box: make TORCH=torch
TORCH ?= torch==2.13.0

.PHONY: install demo demo-clf test test-fast bench clean

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

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

bench: install
	$(PY) bench/decode.py --quick

clean:
	rm -rf runs studies work result.csv submissions/*.csv submissions/*.json leaderboard/*.sqlite*
