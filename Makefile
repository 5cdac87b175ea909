# The README's two commands: `make idp` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SEEDS ?= 5
STEPS ?= 20000
OUT ?= runs
# $(call given,VAR,DEFAULT): VAR if set on the command line or environment, else DEFAULT.
given = $(if $(filter command line environment,$(origin $(1))),$($(1)),$(2))
# Extra flags for experiments/train.py, e.g. ARGS="--temperature=1 --tau=0.05"
# (in the studies: every softMPCritic, ablation and DDPG run), and for experiments/sac.py.
ARGS ?=
SAC_ARGS ?=
# The DDPG baseline as the authors ran it (CleanRL's ddpg_continuous_action):
# ReLU, batch 256, 25k uniform-random steps before learning, the actor every
# 2nd step. DDPG_ARGS= (empty) gives the earlier DDPG, our step's settings.
# SAC's CleanRL settings are experiments/sac.py's defaults (batch 256, 5k
# prefill, target entropy -|A|); the earlier ones: SAC_ARGS="--batch_size=32
# --min_replay_size=0 --target_entropy=-0.5".
DDPG_ARGS ?= --activation=relu --batch_size=256 --warmup_steps=25000 --actor_update_period=2
# Where the paper's Hopper studies (hopper, ablations, baselines) write their folders.
RESULTS ?= results
# Env steps of the SAC and DDPG baselines (the paper reports them at 1e6).
BASELINE_STEPS ?= 1000000
# Chunks (of 1000 steps) between evaluations, for the curves of the studies.
EVAL_EVERY ?= 20
SHELL := /bin/bash

.PHONY: install render-deps idp hopper fig4-smpc fig4-sac fig4-ddpg fig4 walker fig3-group ablations fig3 baselines controller test test-slow bench fig2 table1 choices clean

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
	$(PY) experiments/train.py --env=idp --seeds=$(SEEDS) --total_steps=$(STEPS) --out_dir="$(OUT)/idp" $(ARGS)

# $(call recorded,DIR,COMMAND): DIR/command.txt gets the command and the
# machine it ran on, then the command runs (its output teed to DIR/log.txt).
MACHINE = { echo; uname -a; echo "cpus: $$(nproc)"; grep -m1 'model name' /proc/cpuinfo || true; \
            nvidia-smi -L 2>/dev/null || true; echo "commit: $$(git rev-parse HEAD 2>/dev/null)"; date -u; }
# Both files are appended to, so a run resumed in later sessions keeps every part's
# command, commit and console.
recorded = mkdir -p $(1) && echo '$(strip $(2))' >> $(1)/command.txt && $(MACHINE) >> $(1)/command.txt \
           && set -o pipefail && $(2) 2>&1 | tee -a $(1)/log.txt
TRAIN = $(PY) experiments/train.py --seeds=$(SEEDS) --eval_every=$(EVAL_EVERY)
HOPPER_STEPS = $(call given,STEPS,200000)

# Hopper, softMPCritic with the uniform prior of Fig. 4 (the hopper preset:
# 600 samples, variance 0.05, temperature 0.15), 200k steps; a GPU is advised.
hopper: install
	$(call recorded,$(RESULTS)/hopper,$(TRAIN) --env=hopper --total_steps=$(HOPPER_STEPS) --out_dir=$(RESULTS)/hopper $(ARGS))

# The Hopper study (issue 29), one seed group per call, each in its own folder:
# Fig. 4's softMPCritic (the hopper preset), SEEDS seeds from SEED, 200k steps.
# Resume a group stopped in an earlier session with ARGS=--resume.
SEED ?= 0
fig4-smpc: install
	$(call recorded,$(RESULTS)/fig4/smpc_s$(SEED),$(TRAIN) --env=hopper --seed=$(SEED) --total_steps=$(HOPPER_STEPS) --checkpoint_every=5000 --out_dir=$(RESULTS)/fig4/smpc_s$(SEED) $(ARGS))

# Fig. 4's baselines as seed groups: SAC (brax's trainer) and DDPG (our step, actor
# for control and targets), both with CleanRL's settings, SEEDS seeds from SEED, 200k
# steps (STEPS=1000000 for the paper's length), into sac_sSEED and ddpg_sSEED. They
# observe x as softMPCritic does and as the authors' own baseline scripts did
# (Hopper-v5 with exclude_current_positions_from_observation=False).
# BASELINE_ENV=hopper_gym: Gymnasium's default observation, x left out, as CleanRL's
# published runs; into sac_gym_sSEED and ddpg_gym_sSEED. STEPS=1000000, the paper's
# dashed lines: into sac_1m_sSEED, ddpg_1m_sSEED (sac_gym_1m_sSEED, ..).
BASELINE_ENV ?= hopper
baseline = $(1)$(if $(filter hopper_gym,$(BASELINE_ENV)),_gym)$(if $(filter 1000000,$(HOPPER_STEPS)),_1m)_s$(SEED)
check_baseline_env = test "$(BASELINE_ENV)" = hopper || test "$(BASELINE_ENV)" = hopper_gym || { echo "error: BASELINE_ENV=$(BASELINE_ENV) is invalid; allowed: hopper, hopper_gym" >&2; exit 2; }
fig4-sac: install
	@$(check_baseline_env)
	$(call recorded,$(RESULTS)/fig4/$(call baseline,sac),$(PY) experiments/sac.py --env=$(BASELINE_ENV) --seeds=$(SEEDS) --seed=$(SEED) --total_steps=$(HOPPER_STEPS) --eval_every=$(EVAL_EVERY)000 --out_dir=$(RESULTS)/fig4/$(call baseline,sac) $(SAC_ARGS))
fig4-ddpg: install
	@$(check_baseline_env)
	$(call recorded,$(RESULTS)/fig4/$(call baseline,ddpg),$(TRAIN) --env=$(BASELINE_ENV) --control=actor --targets=actor --seed=$(SEED) --total_steps=$(HOPPER_STEPS) --checkpoint_every=5000 --out_dir=$(RESULTS)/fig4/$(call baseline,ddpg) $(DDPG_ARGS) $(ARGS))

# Fig. 4 from every finished seed group in $(RESULTS)/fig4 (smpc_s*, sac_s*, ddpg_s*,
# sac_gym_s*, ddpg_gym_s*, and the 1M groups *_1m_s*), each configuration's groups
# pooled (a group running or stopped is named and left out): fig4_paper.png, the
# authors' statistic (5k-step moving average of training returns, median and 20-80%
# over seeds), and fig4_eval.png, evaluation returns; each with its table (.md), and
# fig4_paper_seeds.md, each seed's own average, highest point and first pass of 1000. The
# 1M groups are drawn as the paper draws its baselines, a dashed line at their last
# value; CleanRL's published 1M-step returns too, in grey (their documentation: SAC on
# Hopper-v2; DDPG on Hopper-v4).
space := $(subst ,, )
comma := ,
# A seed group is finished when its summary.json is written and not marked
# "finished": false (a group still running has none; one stopped is so marked).
finished = $(and $(wildcard $(1)/summary.json),$(if $(shell grep -l '"finished": *false' $(1)/summary.json),,yes))
# $(call done_groups,DIR,NAME) and $(call open_groups,DIR,NAME): NAME's seed groups in
# DIR, finished and not; $(call groups,DIR,NAME): the finished ones joined with + (plot.py
# pools them).
done_groups = $(strip $(foreach d,$(sort $(wildcard $(1)/$(2)_s*)),$(if $(call finished,$(d)),$(d))))
open_groups = $(filter-out $(call done_groups,$(1),$(2)),$(sort $(wildcard $(1)/$(2)_s*)))
groups = $(subst $(space),+,$(call done_groups,$(1),$(2)))
# $(call leaving_out,DIR,NAMES): a line on stderr for each group not finished.
leaving_out = $(foreach d,$(foreach c,$(2),$(call open_groups,$(1),$(c))),echo "leaving out $(d): not finished (running, or stopped: resume it)" >&2;)
FIG4_CONFIGS = smpc sac ddpg sac_gym ddpg_gym sac_1m ddpg_1m sac_gym_1m ddpg_gym_1m
fig4_label_smpc = softMPCritic
fig4_label_sac = SAC
fig4_label_ddpg = DDPG
fig4_label_sac_gym = SAC without x
fig4_label_ddpg_gym = DDPG without x
fig4_label_sac_1m = SAC at 1M
fig4_label_ddpg_1m = DDPG at 1M
fig4_label_sac_gym_1m = SAC without x at 1M
fig4_label_ddpg_gym_1m = DDPG without x at 1M
# The moving average's env steps of the authors' statistic.
WINDOW ?= 5000
FIG4 = $(strip $(foreach c,$(FIG4_CONFIGS),$(if $(call done_groups,$(RESULTS)/fig4,$(c)),$(c))))
# $(call labels_of,FIG,CONFIGS): their labels (FIG_label_CONFIG), joined by commas, spaces as ~.
labels_of = $(subst $(space),$(comma),$(foreach c,$(2),$(subst $(space),~,$($(1)_label_$(c)))))
FIG4_LABELS = --labels="$(call labels_of,fig4,$(FIG4))"
FIG4_DASHED = $(if $(filter %_1m,$(FIG4)),--dashed="$(call labels_of,fig4,$(filter %_1m,$(FIG4)))")
CLEANRL = --reference="SAC, CleanRL at 1M, Hopper-v2 (2310)=2310" \
          --reference="DDPG, CleanRL at 1M, Hopper-v4 (1577)=1577"
fig4: install
	@$(call leaving_out,$(RESULTS)/fig4,$(FIG4_CONFIGS))
	@test -n "$(FIG4)" || { echo "error: $(RESULTS)/fig4 holds no finished seed group ($(addsuffix _s*,$(FIG4_CONFIGS))); run make fig4-smpc first" >&2; exit 2; }
	$(PY) experiments/plot.py $(foreach c,$(FIG4),$(call groups,$(RESULTS)/fig4,$(c))) \
	  $(subst ~,$(space),$(FIG4_LABELS) $(FIG4_DASHED)) --curve=paper --window=$(WINDOW) --first_past=1000 $(CLEANRL) \
	  --out=$(RESULTS)/fig4/fig4_paper.png --title="Hopper, Fig. 4: training return, 5k-step moving average (median, 20-80% over seeds)"
	$(PY) experiments/plot.py $(foreach c,$(FIG4),$(call groups,$(RESULTS)/fig4,$(c))) \
	  $(subst ~,$(space),$(FIG4_LABELS) $(FIG4_DASHED)) --curve=eval $(CLEANRL) \
	  --out=$(RESULTS)/fig4/fig4_eval.png --title="Hopper, Fig. 4: evaluation return (median, 25-75% over seeds)"

# Fig. 3 from every finished seed group in $(RESULTS)/fig3, each configuration's groups
# pooled (a group running or stopped is named and left out):
# fig3_paper.png (the authors' statistic) and fig3_eval.png, each with its table, and
# fig3_paper_seeds.md: each seed's own average, highest point and first pass of 1000.
FIG3 = $(strip $(foreach c,$(FIG3_ALL),$(if $(call done_groups,$(RESULTS)/fig3,$(c)),$(c))))
FIG3_LABELS = --labels="$(call labels_of,fig3,$(FIG3))"
fig3: install
	@$(call leaving_out,$(RESULTS)/fig3,$(FIG3_ALL))
	@test -n "$(FIG3)" || { echo "error: $(RESULTS)/fig3 holds no finished seed group ($(addsuffix _s*,$(FIG3_CONFIGS))); run make fig3-group first" >&2; exit 2; }
	$(PY) experiments/plot.py $(foreach c,$(FIG3),$(call groups,$(RESULTS)/fig3,$(c))) \
	  $(subst ~,$(space),$(FIG3_LABELS)) --curve=paper --window=$(WINDOW) --first_past=1000 --out=$(RESULTS)/fig3/fig3_paper.png \
	  --title="Hopper, Fig. 3 (Gaussian prior): training return, 5k-step average (median, 20-80%)"
	$(PY) experiments/plot.py $(foreach c,$(FIG3),$(call groups,$(RESULTS)/fig3,$(c))) \
	  $(subst ~,$(space),$(FIG3_LABELS)) --curve=eval --out=$(RESULTS)/fig3/fig3_eval.png \
	  --title="Hopper, Fig. 3 (Gaussian prior): evaluation return (median, 25-75% over seeds)"

# Walker2d-v5 (not in the paper), with Hopper's preset, 200k steps; a GPU is advised.
walker: install
	$(call recorded,$(RESULTS)/walker,$(TRAIN) --env=walker --total_steps=$(HOPPER_STEPS) --out_dir=$(RESULTS)/walker $(ARGS))

# Fig. 3 on Hopper (issue 29): the Gaussian prior with the double-pendulum study's
# hyperparameters; the full method and its four ablations, each run as seed groups,
# `make fig3-group CONFIG=... SEED=...` into $(RESULTS)/fig3/CONFIG_sSEED (SEEDS seeds,
# 200k steps). Without the terminal Q the plan looks H = 8 steps ahead, as the paper's
# text says for that case. `make ablations` runs all five at SEED, then the figure.
# FIG3_VARIANTS are not the paper's configurations: checks of two of them with
# the authors' own settings where ours differ (results/fig3/README.md), run by
# fig3-group and drawn by fig3 like the five, left out of `make ablations`.
ABLATION = $(TRAIN) --env=hopper --total_steps=$(HOPPER_STEPS) --prior=gaussian \
           --num_samples=200 --target_samples=20 --temperature=0.1 --noise_var=0.1 $(ARGS)
FIG3_CONFIGS = full no_q no_ensemble mppi_control_only mppi_targets_only
fig3_full =
fig3_no_q = --use_terminal_q=false --horizon=8
fig3_no_ensemble = --ensemble_size=1
fig3_mppi_control_only = --targets=actor
fig3_mppi_targets_only = --control=actor
# The authors' Fig. 3 code (ddpg_continuous_action.py at b742bf6): a SiLU-then-tanh
# critic, the actor updated every 2nd env step.
FIG3_VARIANTS = mppi_control_only_authors mppi_targets_only_authors
FIG3_ALL = $(FIG3_CONFIGS) $(FIG3_VARIANTS)
AUTHORS_ACTOR = --q_activations=silu,tanh --actor_update_period=2
fig3_mppi_control_only_authors = $(fig3_mppi_control_only) $(AUTHORS_ACTOR)
fig3_mppi_targets_only_authors = $(fig3_mppi_targets_only) $(AUTHORS_ACTOR)
fig3_label_full = softMPCritic (Q and ensemble)
fig3_label_no_q = no Q (ensemble; H=8)
fig3_label_no_ensemble = Q and one model
fig3_label_mppi_control_only = MPPI for control only
fig3_label_mppi_targets_only = MPPI for targets only
AUTHORS_ACTOR_LABEL = (SiLU-tanh critic; actor every 2nd step)
fig3_label_mppi_control_only_authors = $(fig3_label_mppi_control_only) $(AUTHORS_ACTOR_LABEL)
fig3_label_mppi_targets_only_authors = $(fig3_label_mppi_targets_only) $(AUTHORS_ACTOR_LABEL)
CONFIG ?= full
fig3-group: install
	@test -n "$(filter $(CONFIG),$(FIG3_ALL))" || { echo "error: CONFIG=$(CONFIG) is invalid; allowed: $(FIG3_ALL)." >&2; exit 2; }
	$(call recorded,$(RESULTS)/fig3/$(CONFIG)_s$(SEED),$(ABLATION) --seed=$(SEED) --checkpoint_every=5000 $(fig3_$(CONFIG)) --out_dir=$(RESULTS)/fig3/$(CONFIG)_s$(SEED))
ablations: install
	for c in $(FIG3_CONFIGS); do $(MAKE) --no-print-directory -o install fig3-group CONFIG=$$c || exit $$?; done
	$(MAKE) --no-print-directory -o install fig3

# Fig. 4 on Hopper: SAC (brax's trainer) and DDPG (our step with
# --control=actor --targets=actor $(DDPG_ARGS)) at BASELINE_STEPS, both with
# the authors' (CleanRL's) settings, softMPCritic (uniform prior) at STEPS;
# fig4.png draws the baselines' final IQM dashed, fig4_paper.png the
# authors' statistic (smoothed training returns) with theirs dashed.
baselines: install
	$(call recorded,$(RESULTS)/baselines/softMPCritic,$(TRAIN) --env=hopper --total_steps=$(HOPPER_STEPS) --out_dir=$(RESULTS)/baselines/softMPCritic $(ARGS))
	$(call recorded,$(RESULTS)/baselines/DDPG,$(TRAIN) --env=$(BASELINE_ENV) --control=actor --targets=actor --total_steps=$(BASELINE_STEPS) --out_dir=$(RESULTS)/baselines/DDPG $(DDPG_ARGS) $(ARGS))
	$(call recorded,$(RESULTS)/baselines/SAC,$(PY) experiments/sac.py --env=$(BASELINE_ENV) --seeds=$(SEEDS) --total_steps=$(BASELINE_STEPS) --eval_every=$(EVAL_EVERY)000 --out_dir=$(RESULTS)/baselines/SAC $(SAC_ARGS))
	$(PY) experiments/plot.py $(addprefix $(RESULTS)/baselines/,softMPCritic SAC DDPG) --dashed=SAC,DDPG \
	  --out=$(RESULTS)/baselines/fig4.png --title="Hopper: softMPCritic (uniform prior) against SAC and DDPG"
	$(PY) experiments/plot.py $(addprefix $(RESULTS)/baselines/,softMPCritic SAC DDPG) --dashed=SAC,DDPG \
	  --curve=paper --out=$(RESULTS)/baselines/fig4_paper.png

# The deployable controller (issue 30): seed SEED_INDEX of the run in RUN exported
# with float32 and with bfloat16 products, each driving Gymnasium's own env beside MJX
# evaluation of the same checkpoint (CONTROLLER_EPISODES each) and timed at batch 1
# (CONTROLLER_ACTIONS), into $(RESULTS)/controller/NAME_DTYPE.json, then table.md.
RUN ?=
SEED_INDEX ?= 0
NAME ?= $(notdir $(patsubst %/,%,$(RUN)))
CONTROLLER_EPISODES ?= 20
CONTROLLER_ACTIONS ?= 1000
EXPORT = $(PY) -m experiments.export --run_dir=$(RUN) --seed_index=$(SEED_INDEX) \
         --gymnasium_episodes=$(CONTROLLER_EPISODES) --latency_actions=$(CONTROLLER_ACTIONS)
controller: install
	@test -n "$(RUN)" || { echo "error: RUN is required: a run's folder (it holds checkpoints/), e.g. make controller RUN=runs/idp" >&2; exit 2; }
	$(call recorded,$(RESULTS)/controller,$(EXPORT) --compute_dtype=float32 --out=$(RESULTS)/controller/$(NAME)_float32.bin)
	$(call recorded,$(RESULTS)/controller,$(EXPORT) --compute_dtype=bfloat16 --out=$(RESULTS)/controller/$(NAME)_bfloat16.bin)
	$(PY) -m experiments.studies.controller_table --dir=$(RESULTS)/controller

# The paper's Fig. 2 (warm/cold targets x ensemble/one model), 50k steps, SEEDS
# seeds vmapped per configuration (default 3 here), into $(RESULTS)/fig2/.
fig2: install
	SEEDS=$(call given,SEEDS,3) STEPS=$(call given,STEPS,50000) PY=$(PY) OUT=$(RESULTS)/fig2 ARGS="$(ARGS)" \
	  experiments/studies/fig2.sh

# The authors' code's choices (no masking after an imagined termination,
# random initial plans, one raw dynamics batch), each alone and all together,
# against ours on the paper's pendulum: SEEDS x STEPS each (default 3 x 20k),
# into results/choices/.
choices: install
	SEEDS=$(call given,SEEDS,3) STEPS=$(call given,STEPS,20000) PY=$(PY) ARGS="$(ARGS)" experiments/studies/choices.sh

# The paper's Table I: env steps/s, warm vs cold target MPPI, into results/table1.md.
table1: install
	$(PY) experiments/studies/table1.py --out=results/table1.md

# Two pytest workers (pytest-xdist), one test file each at a time, so a
# file's module fixtures compile once: XLA's CPU compiles are single-threaded.
TEST_WORKERS ?= 2
# The longest files first, then every other one: so that no long file is left
# running alone at the end while the other worker idles (--no-loadscope-reorder:
# xdist would otherwise start the files with the most tests first, whatever this
# order, and one long file of few tests ran alone for its last 2.5 minutes).
TESTS_FIRST = tests/drivers/test_resume.py tests/lib/test_runner.py tests/lib/test_parity.py \
              tests/lib/test_wiring.py tests/lib/test_train.py tests/lib/test_actor.py
TESTS = $(TESTS_FIRST) $(filter-out $(TESTS_FIRST),$(sort $(wildcard tests/*/test_*.py)))
test: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25 $(TESTS)

# The compile-heavy tests left out of `make test` (brax's SAC driver, brax's hopper).
test-slow: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile tests -m slow

# Env steps per second of the paper's double-pendulum configuration, with the
# matmul-rate bound of this device; writes results/bench_<backend>.json.
bench: install
	$(PY) experiments/bench.py --shape_bound --seeds=1 --out=auto

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
