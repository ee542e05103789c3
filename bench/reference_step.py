"""Time the reference implementation's own training step on this machine, for side-by-side ratios.

REFERENCES.md's reference figures were measured in other sittings, and machines of this kind differ by a third
from one sitting to the next, so a ratio against them is only indicative. Given a local checkout of NVIDIA's
StyleGAN2-ADA PyTorch code (not shipped with sneakergan: its licence is non-commercial), this script builds the
reference's own Generator, Discriminator and StyleGAN2Loss with a sneakergan preset's shapes and times REFERENCES.md's
"core" step: one G and one D phase (non-saturating loss, Adam), no R1, path length, augmentation or style mixing,
float32, the reference loop's gradient clean-up and G_ema update included. On CPUs the reference runs its ops'
plain-PyTorch fallbacks, as REFERENCES.md's figures did.

    .venv/bin/python bench/reference_step.py --reference-dir ~/src/stylegan2-ada-pytorch [--preset demo64]
                                             [--batch 16] [--iters 8] [--threads 2] [--json]

`bench/bench_train.py --reference DIR` runs it between its own rows (same machine, same minute). Prints one line
(or one JSON object with --json): batch, seconds per step, CPU seconds per step, img/s.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _die(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def checkout_problem(ref_dir: Path) -> str | None:
    """Why `ref_dir` is not a usable checkout of the reference code (one line), or None when it looks like one."""
    if not (ref_dir / "training" / "networks.py").is_file() or not (ref_dir / "torch_utils").is_dir():
        return f"{ref_dir} is not a checkout of NVlabs/stylegan2-ada-pytorch (no training/networks.py and torch_utils/)"
    return None


def load_reference(ref_dir: Path):
    """(networks module, StyleGAN2Loss class, misc module) from a checkout of the reference code."""
    problem = checkout_problem(ref_dir)
    if problem:
        _die(problem)
    sys.path.insert(0, str(ref_dir))
    try:
        from torch_utils import misc
        from training import networks
        from training.loss import StyleGAN2Loss
    except Exception as e:  # noqa: BLE001 - any import failure gets one line
        _die(f"cannot import the reference from {ref_dir}: {type(e).__name__}: {e}")
    return networks, StyleGAN2Loss, misc


def _call_with_known(fn, **kwargs):
    """Call fn with the keyword arguments its signature accepts (the loss API differs slightly between releases)."""
    params = inspect.signature(fn).parameters
    return fn(**{k: v for k, v in kwargs.items() if k in params})


def build_step(ref_dir: Path, preset: str, batch: int | None):
    """(step function, batch): the reference's networks with `preset`'s shapes and its core training step."""
    import torch

    from sneakergan.nets import get_preset

    p = get_preset(preset)
    net = p.network
    if net.img_width != net.img_height:
        _die(f"preset {preset} is not square ({net.img_width}x{net.img_height}); the reference builds square models only")
    batch = batch or p.training.batch
    networks, StyleGAN2Loss, misc = load_reference(ref_dir)
    torch.manual_seed(0)
    G = networks.Generator(z_dim=net.z_dim, c_dim=0, w_dim=net.w_dim, img_resolution=net.resolution, img_channels=3,
                           mapping_kwargs=dict(num_layers=net.mapping_layers),
                           synthesis_kwargs=dict(channel_base=net.channel_base, channel_max=net.channel_max,
                                                 num_fp16_res=0, conv_clamp=net.conv_clamp))
    D = networks.Discriminator(c_dim=0, img_resolution=net.resolution, img_channels=3, channel_base=net.channel_base,
                               channel_max=net.channel_max, num_fp16_res=0, conv_clamp=net.conv_clamp,
                               epilogue_kwargs=dict(mbstd_group_size=net.mbstd_group,
                                                    mbstd_num_channels=net.mbstd_channels))
    G.train().requires_grad_(False)
    D.train().requires_grad_(False)
    G_ema = copy.deepcopy(G).eval()
    dev = torch.device("cpu")
    loss = _call_with_known(StyleGAN2Loss, device=dev, G=G, G_mapping=G.mapping, G_synthesis=G.synthesis, D=D,
                            augment_pipe=None, style_mixing_prob=0.0, r1_gamma=0.0, pl_weight=0.0)
    lr = p.training.lr
    opts = {"G": torch.optim.Adam(G.parameters(), lr=lr, betas=(0.0, 0.99), eps=1e-8),
            "D": torch.optim.Adam(D.parameters(), lr=lr, betas=(0.0, 0.99), eps=1e-8)}
    real_u8 = torch.randint(0, 256, (batch, 3, net.resolution, net.resolution), dtype=torch.uint8)
    c = torch.zeros(batch, 0)
    beta = 0.5 ** (batch / (p.training.ema_kimg * 1000))

    def step() -> None:
        real = real_u8.to(torch.float32) / 127.5 - 1
        for phase, module in (("Gboth", G), ("Dboth", D)):  # "both" = main loss; regularisers are off
            opt = opts[phase[0]]
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            _call_with_known(loss.accumulate_gradients, phase=phase, real_img=real, real_c=c,
                             gen_z=torch.randn(batch, net.z_dim), gen_c=c, sync=True, gain=1, cur_nimg=0)
            module.requires_grad_(False)
            for prm in module.parameters():
                if prm.grad is not None:
                    misc.nan_to_num(prm.grad, nan=0, posinf=1e5, neginf=-1e5, out=prm.grad)
            opt.step()
        with torch.no_grad():
            for p_ema, prm in zip(G_ema.parameters(), G.parameters()):
                p_ema.copy_(prm.lerp(p_ema, beta))
            for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                b_ema.copy_(b)

    return step, batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference-dir", type=Path, required=True)
    ap.add_argument("--preset", default="demo64")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iters", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    step, batch = build_step(args.reference_dir.expanduser(), args.preset, args.batch)
    for _ in range(2):  # warm-up, as bench_train's own rows
        step()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.iters):
        step()
    sec, cpu = (time.perf_counter() - t0) / args.iters, (time.process_time() - c0) / args.iters
    out = {"preset": args.preset, "batch": batch, "sec": sec, "cpu": cpu, "img_s": batch / sec,
           "threads": torch.get_num_threads()}
    print(json.dumps(out) if args.json else
          f"reference core step, {args.preset}, batch {batch}, {out['threads']} threads: {batch / sec:.1f} img/s")


if __name__ == "__main__":
    main()
