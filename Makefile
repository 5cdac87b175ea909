# The README's two commands: `make idp` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SEEDS ?= 5
STEPS ?= 20000
OUT ?= runs
# Extra flags for experiments/train.py, e.g. ARGS="--temperature=1 --tau=0.05".
ARGS ?=

.PHONY: install idp hopper test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

# softMPCritic on the double inverted pendulum, paper defaults, SEEDS seeds vmapped.
idp: install
	$(PY) experiments/train.py --env=idp --seeds=$(SEEDS) --total_steps=$(STEPS) --out_dir=$(OUT)/idp $(ARGS)

# Hopper (uniform prior), 500k steps per the reference notes; a GPU is advised.
hopper: install
	$(PY) experiments/train.py --env=hopper --seeds=$(SEEDS) --out_dir=$(OUT)/hopper $(ARGS)

test: install
	$(PY) -m pytest tests

# Env steps per second of the paper's double-pendulum configuration; last line sps=...
bench: install
	$(PY) experiments/bench.py --shape_bound --seeds=1 --out=auto

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
