"""Every study configuration through its driver: each control x targets pair
of train.py for two chunks and a resume, and each Makefile study target
(hopper, ablations, baselines with SAC, fig2) at tiny sizes through to its
figure. At 2fe103a the DDPG and "MPPI for targets only" runs crashed after
their first chunk (KeyError 'dyn_loss' in the driver's line): no test ran
them through the driver."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers import ROOT, driver

TINY = ["--chunk_steps=20", "--episode_length=15", "--num_samples=8", "--target_samples=4",
        "--hidden_sizes=8", "--batch_size=4", "--eval_episodes=1"]
PNG = b"\x89PNG\r\n\x1a\n"


def env():
  return dict(os.environ, PYTHONPATH=ROOT, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")


def lines(out):
  return [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]


# The fourth pair, mppi x mppi (the default), runs two chunks, a SIGTERM
# and a resume through train.py in tests/drivers/test_resume.py. The other
# three (110-150 s each on a cold cache) run in `make test-slow` (make test's
# 15 minutes); the crash's cause, a metric the DDPG step does not emit, is
# tested in-process in make test (tests/lib/test_runner.py,
# test_reduce_takes_whatever_the_step_emits).
@pytest.mark.parametrize("control,targets", [
    pytest.param("actor", "actor", marks=pytest.mark.slow),
    pytest.param("actor", "mppi", marks=pytest.mark.slow),
    pytest.param("mppi", "actor", marks=pytest.mark.slow)])
def test_every_control_targets_pair_runs_two_chunks_and_resumes(control, targets, tmp_path):
  """40 steps in two chunks, then --resume to 60 (a 20-row buffer both
  times, so the resumed run reads the same compiled programs back)."""
  out = tmp_path / f"{control}_{targets}"
  run = [sys.executable, driver("train.py"), f"--control={control}", f"--targets={targets}",
         "--seeds=2", "--buffer_capacity=20", "--eval_every=2", *TINY, f"--out_dir={out}"]
  first = subprocess.run(run + ["--total_steps=40"], capture_output=True, text=True,
                         timeout=900, env=env())
  assert first.returncode == 0, first.stderr[-3000:]
  assert [l["step"] for l in lines(out)] == [20, 40]
  second = subprocess.run(run + ["--total_steps=60", "--resume"], capture_output=True,
                          text=True, timeout=900, env=env())
  assert second.returncode == 0, second.stderr[-3000:]
  assert "resumed at step 40" in second.stdout and "Traceback" not in second.stderr
  got = lines(out)
  assert [l["step"] for l in got] == [20, 40, 60]
  assert ("dyn_loss" in got[0]) == (control == "mppi" or targets == "mppi")
  assert ("actor_q" in got[0]) == (control == "actor" or targets == "actor")
  assert "eval_returns" in got[1] and len(got[1]["eval_returns"]) == 2
  summary = json.load(open(out / "summary.json"))
  assert summary["finished"] and summary["steps_done"] == 60
  assert len(summary["final_returns"]) == 2
  assert (out / "returns.png").read_bytes()[:8] == PNG


def make(target, results, *assignments, timeout=1800):
  """`make TARGET` on this checkout, its results in RESULTS, install taken as done."""
  p = subprocess.run(["make", "-s", "-C", ROOT, "-o", "install", target, f"RESULTS={results}",
                      f"VENV={os.path.dirname(os.path.dirname(sys.executable))}", *assignments],
                     capture_output=True, text=True, timeout=timeout, env=env())
  assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-3000:])
  return p


TINY_ARGS = "ARGS=" + " ".join(TINY)


@pytest.mark.slow  # Hopper compiles (about a minute each): `make test-slow`
def test_make_hopper_runs_to_its_figure(tmp_path):
  make("hopper", tmp_path, "SEEDS=1", "STEPS=40", "EVAL_EVERY=1", TINY_ARGS)
  out = tmp_path / "hopper"
  assert json.load(open(out / "summary.json"))["finished"]
  assert (out / "returns.png").read_bytes()[:8] == PNG
  assert "--env=hopper" in (out / "command.txt").read_text()
  assert (out / "log.txt").exists()


@pytest.mark.slow  # two Hopper compiles
def test_make_fig4_smpc_runs_a_seed_group_and_resumes_it(tmp_path):
  """One seed group of the Hopper study at its seed offset, stopped (here:
  run to 20 of 40 steps) and resumed in a later call: one folder, its
  command.txt and log.txt holding both parts."""
  make("fig4-smpc", tmp_path, "SEED=7", "SEEDS=1", "STEPS=20", "EVAL_EVERY=1", TINY_ARGS)
  out = tmp_path / "fig4" / "smpc_s7"
  first = json.load(open(out / "summary.json"))
  assert first["finished"] and first["seed"] == 7 and first["steps_done"] == 20
  make("fig4-smpc", tmp_path, "SEED=7", "SEEDS=1", "STEPS=40", "EVAL_EVERY=1",
       TINY_ARGS + " --resume")
  second = json.load(open(out / "summary.json"))
  assert second["finished"] and second["steps_done"] == 40
  assert (out / "command.txt").read_text().count("--seed=7") == 2
  assert (out / "log.txt").read_text().count("softMPCritic (control=mppi") == 2


@pytest.mark.slow  # three Hopper compiles and brax's SAC
def test_make_fig4_pools_the_seed_groups_of_each_configuration(tmp_path):
  """Seed groups of softMPCritic (two), SAC and DDPG (x observed) and SAC
  without x (BASELINE_ENV=hopper_gym), each from its own make target, then
  `make fig4`: one curve per configuration, its groups pooled,
  with CleanRL's published returns as references, and both statistics."""
  tiny = ["SEEDS=1", "EVAL_EVERY=1", TINY_ARGS]
  make("fig4-smpc", tmp_path, "SEED=0", "STEPS=40", *tiny)
  make("fig4-smpc", tmp_path, "SEED=1", "STEPS=40", *tiny)
  make("fig4-ddpg", tmp_path, "SEED=0", "STEPS=40", *tiny,
       "DDPG_ARGS=--activation=relu --warmup_steps=20 --actor_update_period=2")
  sac = "SAC_ARGS=--episode_length=50 --eval_episodes=1 --hidden_sizes=8 --min_replay_size=500"
  make("fig4-sac", tmp_path, "SEED=0", "STEPS=2000", *tiny, sac)
  make("fig4-sac", tmp_path, "SEED=0", "STEPS=2000", *tiny, sac, "BASELINE_ENV=hopper_gym")
  out = tmp_path / "fig4"
  assert json.load(open(out / "sac_s0" / "summary.json"))["total_steps"] == 2000
  assert "--env=hopper " in (out / "sac_s0" / "command.txt").read_text()
  assert "--env=hopper_gym " in (out / "sac_gym_s0" / "command.txt").read_text()
  assert "--control=actor --targets=actor --seed=0" in (out / "ddpg_s0" / "command.txt").read_text()
  make("fig4", tmp_path, "WINDOW=20")
  for name in ("fig4_paper", "fig4_eval"):
    assert (out / f"{name}.png").read_bytes()[:8] == PNG
    rows = [l.split(" | ") for l in (out / f"{name}.md").read_text().splitlines()[2:6]]
    assert [(r[0], r[1]) for r in rows] == [("| softMPCritic", "2"), ("| SAC", "1"),
                                            ("| DDPG", "1"), ("| SAC without x", "1")]
    assert "SAC, CleanRL at 1M, Hopper-v2 (2310): 2310" in (out / f"{name}.md").read_text()
  paper = (out / "fig4_paper.md").read_text().splitlines()
  assert "20-step moving average: median (20-80%) at step" in paper[0]
  assert paper[2].endswith(" at 40 |"), paper[2]  # the smoothed median at the pooled end


def test_make_fig4_pools_finished_groups_and_names_the_others(tmp_path):
  """A group still running (no summary.json yet) or stopped ("finished":
  false) is named on stderr and left out, not pooled at its early step nor
  crashed on; the finished groups (the study's own, copied) are pooled, each
  configuration under its label, and a 1M group is drawn as a dashed line.
  No compile: make test."""
  fig4 = tmp_path / "fig4"
  # (copied from, into): sac_s0's files stand in for a 1M group here, to
  # exercise how make fig4 names and draws one.
  for source, group in (("smpc_s0", "smpc_s0"), ("smpc_s0", "smpc_s6"), ("sac_s0", "sac_s0"),
                        ("sac_gym_s0", "sac_gym_s0"), ("sac_s0", "sac_1m_s0")):
    (fig4 / group).mkdir(parents=True)
    for name in ("metrics.jsonl", "summary.json"):
      shutil.copy(os.path.join(ROOT, "results", "fig4", source, name), fig4 / group / name)
  stopped = fig4 / "smpc_s6" / "summary.json"
  stopped.write_text(json.dumps(dict(json.load(open(stopped)), finished=False)))
  (fig4 / "smpc_s4").mkdir()  # a group that has not finished its first chunk
  p = make("fig4", tmp_path)
  for group in ("smpc_s4", "smpc_s6"):
    assert f"leaving out {fig4 / group}: not finished" in p.stderr, p.stderr
  assert "smpc_s0: not finished" not in p.stderr
  for name in ("fig4_paper", "fig4_eval"):
    rows = [l.split(" | ")[:4] for l in (fig4 / f"{name}.md").read_text().splitlines()[2:6]]
    assert rows == [["| softMPCritic", "2", "200000", "1618"], ["| SAC", "1", "200000", "610"],
                    ["| SAC without x", "1", "200000", "2989"],
                    ["| SAC at 1M", "1", "200000", "610"]], rows
    assert "Drawn as a dashed line at its last value: SAC at 1M." in (fig4 / f"{name}.md").read_text()
  # Each seed's own figures, named by its group's seed offset; the ledger quotes them.
  seeds = [l.split(" | ")[:5] for l in (fig4 / "fig4_paper_seeds.md").read_text().splitlines()[2:]]
  assert seeds == [["| softMPCritic", "0", "1335", "2714 (130000)", "70000"],
                   ["| softMPCritic", "1", "1479", "1562 (195000)", "105000"],
                   ["| SAC", "0", "581", "581 (200000)", "not reached"],
                   ["| SAC without x", "0", "834", "3003 (190000)", "95000"],
                   ["| SAC at 1M", "0", "581", "581 (200000)", "not reached"]], seeds
  shutil.rmtree(fig4 / "smpc_s0")
  for group in ("sac_s0", "sac_gym_s0", "sac_1m_s0"):
    shutil.rmtree(fig4 / group)
  fail = subprocess.run(["make", "-s", "-C", ROOT, "-o", "install", "fig4",
                         f"RESULTS={tmp_path}"], capture_output=True, text=True, env=env())
  assert fail.returncode == 2 and "holds no finished seed group" in fail.stderr, fail.stderr


def test_make_fig3_draws_the_variants_beside_the_paper_configurations(tmp_path):
  """The study's own groups, copied: each configuration under its label, a
  variant (the authors' settings) as one more line after the paper's, and a
  variant group still running named and left out. No compile: make test."""
  fig3 = tmp_path / "fig3"
  for group in ("full_s0", "mppi_control_only_s0", "mppi_control_only_authors_s0"):
    (fig3 / group).mkdir(parents=True)
    for name in ("metrics.jsonl", "summary.json"):
      shutil.copy(os.path.join(ROOT, "results", "fig3", group, name), fig3 / group / name)
  (fig3 / "mppi_targets_only_authors_s0").mkdir()  # running: no summary yet
  p = make("fig3", tmp_path)
  assert f"leaving out {fig3 / 'mppi_targets_only_authors_s0'}: not finished" in p.stderr
  rows = [l.split(" | ")[:4] for l in (fig3 / "fig3_paper.md").read_text().splitlines()[2:]]
  assert rows == [["| softMPCritic (Q and ensemble)", "3", "200000", "2102"],
                  ["| MPPI for control only", "3", "200000", "115"],
                  ["| MPPI for control only (SiLU-tanh critic; actor every 2nd step)", "3",
                   "200000", "179"]], rows
  assert (fig3 / "fig3_paper.png").read_bytes()[:8] == PNG


@pytest.mark.parametrize("target,assignments,folder", [
    ("fig4-sac", [], "sac_s3"), ("fig4-ddpg", [], "ddpg_s3"),
    ("fig4-sac", ["BASELINE_ENV=hopper_gym"], "sac_gym_s3"),
    ("fig4-sac", ["STEPS=1000000"], "sac_1m_s3"),
    ("fig4-ddpg", ["STEPS=1000000", "BASELINE_ENV=hopper_gym"], "ddpg_gym_1m_s3"),
    ("fig3-group", ["CONFIG=no_q"], "no_q_s3"),
    ("fig3-group", ["CONFIG=mppi_control_only_authors"], "mppi_control_only_authors_s3")])
def test_each_study_target_names_its_seed_group_folder(tmp_path, target, assignments, folder):
  """What `make TARGET` would run (make -n): the folder is named for the
  configuration, the observation, the length and the seed offset, and the
  run writes there."""
  p = make(target, tmp_path, "-n", "SEED=3", *assignments)
  out = os.path.join(str(tmp_path), "fig3" if target == "fig3-group" else "fig4", folder)
  assert f"--out_dir={out}" in p.stdout, p.stdout
  assert not os.path.exists(out)


@pytest.mark.parametrize("ablation", ["mppi_control_only", "mppi_targets_only"])
def test_fig3_variant_is_the_ablation_with_the_authors_settings(tmp_path, ablation):
  """ABLATION_authors: that ablation with the authors' Fig. 3 critic (SiLU
  then tanh) and actor period (2), nothing else changed; not one of the five
  configurations `make ablations` runs."""
  def flags(config):  # the run's flags, from the command make would record
    line = make("fig3-group", tmp_path, "-n", f"CONFIG={config}").stdout
    return set(line.split("experiments/train.py", 1)[1].split(" --out_dir=", 1)[0].split())
  variant, paper = flags(f"{ablation}_authors"), flags(ablation)
  assert variant - paper == {"--q_activations=silu,tanh", "--actor_update_period=2"}, variant
  assert paper <= variant and ({"--targets=actor", "--control=actor"} & paper)
  ablations = make("ablations", tmp_path, "-n").stdout
  runs = {w.split("/fig3/")[1].strip("'") for w in ablations.split() if w.startswith("--out_dir=")}
  assert runs == {f"{c}_s0" for c in ("full", "no_q", "no_ensemble", "mppi_control_only",
                                      "mppi_targets_only")}, runs


@pytest.mark.parametrize("target,assignment,message", [
    ("fig4-sac", "BASELINE_ENV=walker", "error: BASELINE_ENV=walker is invalid; allowed: hopper, hopper_gym"),
    ("fig4-ddpg", "BASELINE_ENV=", "error: BASELINE_ENV= is invalid; allowed: hopper, hopper_gym"),
    ("fig3-group", "CONFIG=no_model", "error: CONFIG=no_model is invalid; allowed: full no_q no_ensemble")])
def test_study_targets_refuse_an_unknown_setting(tmp_path, target, assignment, message):
  """One line naming the setting and what is allowed, exit 2, nothing made."""
  p = subprocess.run(["make", "-s", "-C", ROOT, "-o", "install", target, f"RESULTS={tmp_path}",
                      assignment], capture_output=True, text=True, env=env())
  assert p.returncode == 2 and p.stderr.startswith(message), (p.returncode, p.stderr)
  assert "make: ***" not in p.stderr.splitlines()[0]
  assert not any(tmp_path.iterdir())


@pytest.mark.slow  # five Hopper compiles
def test_make_ablations_runs_each_seed_group_to_fig3(tmp_path):
  """`make ablations` runs the five configurations as seed groups at SEED
  (`make fig3-group`), then `make fig3`; a second group of the full method
  is pooled with the first."""
  make("ablations", tmp_path, "SEED=3", "SEEDS=1", "STEPS=40", "EVAL_EVERY=1", TINY_ARGS)
  out = tmp_path / "fig3"
  for name in ("full", "no_q", "no_ensemble", "mppi_control_only", "mppi_targets_only"):
    summary = json.load(open(out / f"{name}_s3" / "summary.json"))
    assert summary["finished"] and summary["steps_done"] == 40 and summary["seed"] == 3, name
  assert summary["config"]["control"] == "actor"  # mppi_targets_only
  no_q = json.load(open(out / "no_q_s3" / "summary.json"))["config"]
  assert (no_q["use_terminal_q"], no_q["horizon"]) == (False, 8)  # the paper's H for no Q
  make("fig3-group", tmp_path, "CONFIG=full", "SEED=4", "SEEDS=1", "STEPS=40", "EVAL_EVERY=1",
       TINY_ARGS)
  make("fig3", tmp_path, "WINDOW=20")
  for name in ("fig3_paper", "fig3_eval"):
    assert (out / f"{name}.png").read_bytes()[:8] == PNG
    rows = [l.split(" | ")[:2] for l in (out / f"{name}.md").read_text().splitlines()[2:]]
    assert rows == [["| softMPCritic (Q and ensemble)", "2"], ["| no Q (ensemble; H=8)", "1"],
                    ["| Q and one model", "1"], ["| MPPI for control only", "1"],
                    ["| MPPI for targets only", "1"]]


@pytest.mark.slow  # two Hopper compiles and brax's SAC
def test_make_baselines_runs_sac_and_ddpg_to_fig4(tmp_path):
  make("baselines", tmp_path, "SEEDS=1", "STEPS=40", "EVAL_EVERY=1", "BASELINE_STEPS=2000",
       TINY_ARGS, "DDPG_ARGS=--activation=relu --warmup_steps=20 --actor_update_period=2",
       "SAC_ARGS=--episode_length=50 --eval_episodes=1 --hidden_sizes=8 --min_replay_size=500")
  out = tmp_path / "baselines"
  for name, steps in (("softMPCritic", 40), ("DDPG", 2000), ("SAC", 2000)):
    summary = json.load(open(out / name / "summary.json"))
    assert summary.get("finished", True) and summary["total_steps"] == steps, name
  for figure in ("fig4.png", "fig4_paper.png"):
    assert (out / figure).read_bytes()[:8] == PNG


@pytest.mark.slow  # four pendulum compiles
def test_make_fig2_runs_to_its_figure_and_table(tmp_path):
  make("fig2", tmp_path, "SEEDS=1", "STEPS=40", TINY_ARGS)
  out = tmp_path / "fig2"
  for name in ("warm_ensemble", "cold_ensemble", "warm_one", "cold_one"):
    assert json.load(open(out / name / "summary.json"))["finished"], name
  assert (out / "fig2.png").read_bytes()[:8] == PNG
  assert (out / "table.md").read_text().count("\n") >= 4
  # A stopped configuration (finished: false, its checkpoints kept) is
  # resumed, not taken as done (issue 28, case 6); the others are skipped.
  stopped = out / "warm_one" / "summary.json"
  summary = json.load(open(stopped))
  stopped.write_text(json.dumps(dict(summary, finished=False, stopped_by="SIGTERM")))
  p = make("fig2", tmp_path, "SEEDS=1", "STEPS=40", TINY_ARGS)
  assert "warm_one: stopped before its end; resuming it" in p.stdout, p.stdout[-3000:]
  assert p.stdout.count("done already") == 3, p.stdout[-3000:]
  assert json.load(open(stopped))["finished"]
