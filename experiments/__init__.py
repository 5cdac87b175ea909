"""The drivers: `python -m experiments.train` (or `python experiments/train.py`),
sweep, sac, bench, render, plot and step_ops at the top; their shared parts
in harness/; the paper's studies in studies/; the scripts that run the
authors' code in authors/; the GPU checks in gpu/. Importing a driver defines
no flags: each defines its own when it runs (harness.cli.run)."""
