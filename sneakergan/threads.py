"""How OpenMP threads wait between the step's parallel regions: set before torch is imported (libgomp reads the
environment when it is loaded).

Why not libgomp's default or PASSIVE: the training step is hundreds of small kernels, so its threads wait often.
PASSIVE (sleep at once) cost one 2-thread process 20-25% on an idle 2-core machine (bf16 core step, demo64, batch
16: 41.8-45.0 img/s against 55.1-56.1 with libgomp's default spin of 300,000 iterations). Spinning long is what can
collapse a step when other busy processes share the cores. A spin of 10,000 iterations measured as fast as the
default when idle (54.3-55.8 img/s) and no slower than PASSIVE beside one or two busy processes (13.0-14.1 against
12.6-14.9; 9.4-20.5 against 8.4-11.9), same sitting, side by side (README, bf16).
"""

from __future__ import annotations

import os

SPIN_COUNT = 10_000


def set_wait_policy(environ: dict[str, str] | None = None) -> str:
    """Ask libgomp for a short spin unless the environment already chose (OMP_WAIT_POLICY or GOMP_SPINCOUNT).
    OMP_WAIT_POLICY=default chooses libgomp's own default (the variable is removed: libgomp rejects the word).

    Returns what the process will run under, for headers and logs."""
    env = os.environ if environ is None else environ
    if env.get("OMP_WAIT_POLICY", "").strip().lower() == "default":
        del env["OMP_WAIT_POLICY"]
    elif "OMP_WAIT_POLICY" not in env and "GOMP_SPINCOUNT" not in env:
        env["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    return describe_wait_policy(env)


def describe_wait_policy(environ: dict[str, str] | None = None) -> str:
    """The wait policy in words: 'PASSIVE', 'ACTIVE', 'spin 10000' or 'libgomp default'."""
    env = os.environ if environ is None else environ
    policy = env.get("OMP_WAIT_POLICY", "").strip().upper()
    if policy in ("ACTIVE", "PASSIVE"):
        return policy
    spin = env.get("GOMP_SPINCOUNT", "").strip()
    return f"spin {spin}" if spin else "libgomp default"
