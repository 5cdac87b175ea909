# The README's two commands: `make idp` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SEEDS ?= 5
STEPS ?= 20000
OUT ?= runs
# $(call given,VAR,DEFAULT): VAR if set on the command line or environment, else DEFAULT.
given = $(if $(filter command line environment,$(origin $(1))),$($(1)),$(2))
# Extra flags for experiments/train.py, e.g. ARGS="--temperature=1 --tau=0.05".
ARGS ?=

.PHONY: install render-deps idp hopper test bench fig2 table1 clean

install: $(VENV)/.installed render-deps

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

# Headless rendering (experiments/render.py): MuJoCo draws through EGL, or
# OSMesa with MUJOCO_GL=osmesa. Installs the system libraries only if missing.
render-deps:
	@ldconfig -p | grep -q 'libEGL.so.1' && ldconfig -p | grep -q 'libOSMesa.so' || \
	  { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && \
	    $$SUDO apt-get install -y -qq --no-install-recommends libegl1 libgl1 libosmesa6 \
	      >/dev/null 2>&1 || \
	    echo "warning: could not install libegl1/libosmesa6; rendering may fail"; }

# softMPCritic on the double inverted pendulum, paper defaults, SEEDS seeds vmapped.
idp: install
	$(PY) experiments/train.py --env=idp --seeds=$(SEEDS) --total_steps=$(STEPS) --out_dir=$(OUT)/idp $(ARGS)

# Hopper (uniform prior), 500k steps per the reference notes; a GPU is advised.
hopper: install
	$(PY) experiments/train.py --env=hopper --seeds=$(SEEDS) --out_dir=$(OUT)/hopper $(ARGS)

# The paper's Fig. 2 (warm/cold targets x ensemble/one model), 50k steps, SEEDS
# seeds vmapped per configuration (default 3 here), into results/fig2/.
fig2: install
	SEEDS=$(call given,SEEDS,3) STEPS=$(call given,STEPS,50000) PY=$(PY) experiments/fig2.sh

# The paper's Table I: env steps/s, warm vs cold target MPPI, into results/table1.md.
table1: install
	$(PY) experiments/table1.py --out=results/table1.md

test: install
	$(PY) -m pytest tests

# Env steps per second of the paper's double-pendulum configuration; last line sps=...
bench: install
	$(PY) experiments/bench.py --out=results/bench_$(shell $(PY) -c "import jax; print(jax.devices()[0].platform)").json

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
