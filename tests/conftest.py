import os

# MuJoCo picks its OpenGL platform when first imported: render headless
# (EGL; MUJOCO_GL=osmesa also works) in every test process.
os.environ.setdefault("MUJOCO_GL", "egl")
