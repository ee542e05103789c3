"""The OpenMP wait policy: a short spin unless the user chose, and a child process really runs under it."""

import os
import subprocess
import sys

from sneakergan.threads import SPIN_COUNT, describe_wait_policy, set_wait_policy


def test_a_short_spin_is_asked_for_when_nothing_was_chosen():
    env: dict[str, str] = {}
    assert set_wait_policy(env) == f"spin {SPIN_COUNT}"
    assert env == {"GOMP_SPINCOUNT": str(SPIN_COUNT)}


def test_the_users_choice_wins():
    for chosen in ({"OMP_WAIT_POLICY": "passive"}, {"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "0"}):
        env = dict(chosen)
        set_wait_policy(env)
        assert env == chosen  # untouched
    env = {"OMP_WAIT_POLICY": "default"}  # libgomp's own default, which it cannot be asked for by name
    assert set_wait_policy(env) == "libgomp default" and env == {}
    assert describe_wait_policy({"OMP_WAIT_POLICY": "passive"}) == "PASSIVE"
    assert describe_wait_policy({"GOMP_SPINCOUNT": "0"}) == "spin 0"
    assert describe_wait_policy({}) == "libgomp default"


def test_train_sets_it_before_torch_loads():
    # `train` sets the policy in the process that then imports torch; a config error stops it right after.
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    code = ("import os, sys\n"
            "from sneakergan.train import commands\n"
            "assert 'torch' not in sys.modules\n"
            "try:\n"
            "    commands._run('train', {}, {'progress': False})\n"
            "except BaseException:  # the empty config is refused\n"
            "    pass\n"
            "print(os.environ.get('GOMP_SPINCOUNT'))\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == str(SPIN_COUNT), out.stdout + out.stderr
