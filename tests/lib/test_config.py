import pytest

from smpc_jax import Config, preset, validate


def test_presets_hold_the_paper_defaults():
  c = preset("idp")
  assert (c.horizon, c.num_samples, c.target_samples, c.temperature, c.noise_var,
          c.gamma, c.ensemble_size, c.batch_size, c.tau, c.learning_rate) == (
              4, 200, 20, 0.1, 0.1, 0.99, 4, 32, 0.005, 3e-4)
  assert c.hidden_sizes == (256, 256) and c.warm_start and c.prior == "gaussian"
  assert preset("hopper").prior == "uniform"
  # The paper's figures come from the authors' code: one member per step.
  assert c.branching == "per_step" and preset("hopper").branching == "per_step"
  # The paper's pendulum takes the authors' code's five choices (they
  # reproduce its returns, results/choices50k); the class keeps ours.
  assert (c.mask_terminations, c.initial_plan, c.dynamics_batch, c.standardise_model,
          c.network_init, c.keep_plan_tail) == (False, "random", "shared", False, "torch", False)
  assert Config().mask_terminations and Config().network_init == "flax"
  # Walker2d takes Hopper's preset (not tuned).
  assert preset("walker") == preset("hopper").replace(env="walker")
  # brax's tasks keep the settings their results were made with.
  assert preset("idp_brax").branching == "per_sample"
  assert hash(c) == hash(preset("idp"))  # frozen and hashable: a static arg


@pytest.mark.parametrize("field,value,words", [
    ("temperature", -0.1, "temperature=-0.1 is invalid; it must be > 0"),
    ("num_samples", 202, "num_samples=202 is invalid; with branching='per_sample' it must be divisible by ensemble_size=4"),
    ("target_samples", 0, "target_samples=0 is invalid"),
    ("env", "cartpole", "env='cartpole' is invalid; allowed: idp, hopper, walker, idp_brax, hopper_brax, hopper_gym"),
    ("prior", "laplace", "prior='laplace' is invalid; allowed: gaussian, uniform"),
    ("initial_plan", "ones", "initial_plan='ones' is invalid; allowed: zeros, random"),
    ("dynamics_batch", "per_step", "dynamics_batch='per_step' is invalid; allowed: per_member, shared"),
    ("network_init", "xavier", "network_init='xavier' is invalid; allowed: flax, torch"),
    ("gamma", 1.5, "gamma=1.5 is invalid; it must lie in (0, 1]"),
    ("horizon", -1, "horizon=-1 is invalid"),
    ("noise_var", 0.0, "noise_var=0.0 is invalid"),
    ("hidden_sizes", (), "hidden_sizes=() is invalid"),
    # Non-finite floats pass `> 0` style checks (inf) or slip through (nan).
    ("temperature", float("inf"), "temperature=inf is invalid; it must be a finite number"),
    ("noise_var", float("nan"), "noise_var=nan is invalid; it must be a finite number"),
    ("learning_rate", float("inf"), "learning_rate=inf is invalid; it must be a finite number"),
    ("tau", float("nan"), "tau=nan is invalid; it must be a finite number"),
    ("gamma", float("-inf"), "gamma=-inf is invalid; it must be a finite number"),
    # Finite in float64 but 0 or inf in the float32 state (issue 20: the run
    # then stopped blaming dyn_loss). 1e-40 is a float32 denormal, flushed to 0.
    ("temperature", 1e-46, "temperature=1e-46 is invalid; it must be > 0 in float32"),
    ("tau", 1e-40, "tau=1e-40 is invalid; it must be > 0 in float32"),
    ("noise_var", 1e39, "noise_var=1e+39 is invalid; it must be a finite number in float32"),
    ("learning_rate", 3.5e38, "learning_rate=3.5e+38 is invalid; it must be a finite number in "
                              "float32"),
    ("actor_noise", -1e39, "actor_noise=-1e+39 is invalid; it must be a finite number in float32"),
])
def test_invalid_values_name_the_field(field, value, words):
  with pytest.raises(ValueError) as e:
    validate(Config(branching="per_sample").replace(**{field: value}))
  assert words in str(e.value)


def test_unknown_preset_is_a_clear_error():
  with pytest.raises(ValueError, match="env='cheetah' is not known; allowed: idp, hopper, walker, idp_brax, hopper_brax, hopper_gym"):
    preset("cheetah")


def test_a_task_without_a_known_reward_runs_ddpg_only():
  """hopper_gym observes no x, so the planner has no reward to score with:
  its preset is DDPG (Hopper's settings otherwise), and any use of the
  planner is refused, naming what is allowed."""
  c = preset("hopper_gym")
  assert (c.control, c.targets) == ("actor", "actor")
  assert c == preset("hopper").replace(env="hopper_gym", control="actor", targets="actor")
  for field in ("control", "targets"):
    with pytest.raises(ValueError, match=r"^env='hopper_gym' is invalid; it has no known "
                       r"reward of \(s, a, s'\) for the planner; it allows only "
                       r"control=actor with targets=actor \(DDPG\)\.$"):
      validate(c.replace(**{field: "mppi"}))


def test_seeds_must_be_distinct_prng_seeds():
  """jax.random.PRNGKey keeps 32 bits: 2**32 and 2**40 are seed 0's run, -1
  is 2**32 - 1's (issue 20: --seed=2**40 ran seed 0 and recorded 2**40)."""
  import jax
  from smpc_jax.config import MAX_SEED, check_seed
  assert (jax.random.PRNGKey(2**40) == jax.random.PRNGKey(0)).all()
  check_seed(0)
  check_seed(MAX_SEED)
  check_seed(MAX_SEED - 4, runs=5)
  for seed, runs in ((2**40, 1), (-1, 1), (MAX_SEED - 3, 5), (1.5, 1)):
    with pytest.raises(ValueError, match=r"^seed=.* is invalid; it must be an integer in \[0, "):
      check_seed(seed, runs)
