"""The training path reproduces the reference implementation's own gradients (fp32), term by term.

tests/fixtures/nvlabs/nvlabs-tiny.grads.npz holds, for the genuine snapshot next to it, the gradients the
reference's networks and loss formulas give for Gmain, Gpl (path length), Dmain and Dr1 on fixed inputs (see the
fixture's README). If a test here fails, fix the loss or the networks, not the test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sneakergan.interop.nvlabs import read_snapshot
from sneakergan.train.loss import LossConfig, StyleGAN2Loss

FIXTURE = Path(__file__).parent / "fixtures" / "nvlabs"
TOL = 1e-4  # relative error |ours - ref| / |ref| per parameter; a faithful fp32 path gets ~1e-5

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(FIXTURE / "nvlabs-tiny.grads.npz"))


def fresh_loss():
    """G and D of the snapshot in train mode (gradients on), the loss as the fixture was computed."""
    _, nets, _ = read_snapshot(FIXTURE / "nvlabs-tiny.pkl", nets=("G", "D"))
    G, D = nets["G"].train().requires_grad_(True), nets["D"].train().requires_grad_(True)
    cfg = LossConfig(r1_gamma=1.0, pl_weight=2.0, pl_decay=0.01, pl_batch_shrink=2, style_mix=0.0, noise_mode="const")
    return G, D, StyleGAN2Loss(G, D, None, cfg)


def compare(module: torch.nn.Module, ref: dict, term: str) -> dict[str, float]:
    """Relative error of every parameter's gradient against the reference's (all must be present)."""
    errs = {}
    names = {k.split("/", 1)[1] for k in ref if k.startswith(term + "/")}
    params = dict(module.named_parameters())
    assert names == set(params), f"{term}: parameters differ: {sorted(names ^ set(params))[:5]}"
    for name in names:
        want = torch.from_numpy(ref[f"{term}/{name}"]).double()
        got = params[name].grad
        # A parameter the term does not reach (the last toRGB bias under path length) has no gradient here and
        # an exactly zero one in the reference.
        got = torch.zeros_like(want) if got is None else got.double()
        errs[name] = float((got - want).norm() / want.norm()) if want.norm() > 0 else float(got.norm())
    return errs


def assert_close(errs: dict[str, float], term: str) -> None:
    worst = max(errs, key=errs.get)
    assert errs[worst] < TOL, f"{term}: {worst} off by {errs[worst]:.2e} (relative)"


def test_gmain_gradients(ref):
    G, D, loss = fresh_loss()
    D.requires_grad_(False)
    total, _, stats = loss.g_main(torch.from_numpy(ref["z"]).float(), None)
    total.backward()
    assert float(total.detach()) == pytest.approx(float(ref["loss_Gmain"]), rel=1e-5)
    assert_close(compare(G, ref, "Gmain"), "Gmain")


def test_gpl_gradients_flow_through_the_batch_mean(ref):
    G, D, loss = fresh_loss()
    D.requires_grad_(False)
    z = torch.from_numpy(ref["z"]).float()
    total, stats = loss.g_pl(z, None, gain=1.0, noise=torch.from_numpy(ref["pl_noise"]).float())
    total.backward()
    assert float(total.detach()) == pytest.approx(float(ref["loss_Gpl"]), rel=1e-5)
    lengths = torch.from_numpy(ref["pl_lengths"]).double()
    assert float(loss.pl_mean) == pytest.approx(float(0.01 * lengths.mean()), rel=1e-5)  # from 0 toward the mean
    assert_close(compare(G, ref, "Gpl"), "Gpl")


def test_dmain_gradients(ref):
    G, D, loss = fresh_loss()
    G.requires_grad_(False)
    with torch.no_grad():
        fake = G(torch.from_numpy(ref["z"]).float(), noise_mode="const")
    total, real_logits, _ = loss.d_main(torch.from_numpy(ref["real"]).float(), None, fake, None)
    total.backward()
    assert float(total.detach()) == pytest.approx(float(ref["loss_Dmain"]), rel=1e-5)
    np.testing.assert_allclose(real_logits.numpy(), ref["real_logits"], rtol=1e-4, atol=1e-5)
    assert_close(compare(D, ref, "Dmain"), "Dmain")


def test_dr1_gradients(ref):
    G, D, loss = fresh_loss()
    total, _ = loss.d_r1(torch.from_numpy(ref["real"]).float(), None, gain=1.0)
    total.backward()
    assert float(total.detach()) == pytest.approx(float(ref["loss_Dr1"]), rel=1e-4)
    assert_close(compare(D, ref, "Dr1"), "Dr1")
