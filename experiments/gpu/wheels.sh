#!/usr/bin/env bash
# Wheels that the GPU machines of the `device` tool lack (their image has
# Python 3.12 and jax 0.11 for CUDA, flax, optax, orbax, matplotlib; it has no
# brax, mujoco or mujoco-mjx, and it cannot reach PyPI). Run this where pip
# works, from the repository root; it fills .whl/ (ignored by git), which the
# device run carries: run(command="bash experiments/gpu/check.sh", carry=[".whl"]).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
# Pinned as constraints.txt pins them for the tests (Python 3.11, CPU); jax,
# flax, optax and chex are the image's own (they match its jax); orbax is
# carried so that checkpoints are written by the version the tests ran.
# --no-deps: each missing dependency is named here.
pkgs=(brax==0.14.2 mujoco==3.17.0 mujoco-mjx==3.17.0 websockets
      glfw==2.11.0 pyopengl jaxopt==0.8.5 trimesh==5.2.0 tensorboardX==2.6.5
      orbax-checkpoint==0.12.8 ml_collections==1.1.0)  # ml_collections: brax's SAC
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d .whl "${pkgs[@]}"
ls -la .whl
du -sh .whl
