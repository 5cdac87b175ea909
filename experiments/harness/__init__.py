"""What the drivers share: the entry point and its checks (cli), one flag per
Config field (config_flags), run folders and their files (files), statistics
over seeds (stats), figures (plots), progress lines and TensorBoard
(progress), signals (signals), devices and processes (devices), a sweep's
grid and table (grid), checkpoint I/O quieting (checkpoint_io), and the body
of train.py and sweep.py around smpc_jax.runner (driver)."""
