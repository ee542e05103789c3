"""bench/reference_step.py drives a local checkout of the reference through its public API (none is shipped, so a
small stand-in with the same API plays it here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "reference_step.py"

NETWORKS = '''
import torch
class Generator(torch.nn.Module):
    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs, synthesis_kwargs):
        super().__init__()
        self.z_dim, self.res = z_dim, img_resolution
        self.lin = torch.nn.Linear(z_dim, img_channels * img_resolution * img_resolution)
        self.mapping, self.synthesis = self.lin, self.lin
        self.kwargs = dict(mapping_kwargs=mapping_kwargs, synthesis_kwargs=synthesis_kwargs)
class Discriminator(torch.nn.Module):
    def __init__(self, c_dim, img_resolution, img_channels, channel_base, channel_max, num_fp16_res, conv_clamp,
                 epilogue_kwargs):
        super().__init__()
        self.lin = torch.nn.Linear(img_channels * img_resolution * img_resolution, 1)
'''

LOSS = '''
import json, os, torch
class StyleGAN2Loss:
    def __init__(self, device, G_mapping, G_synthesis, D, augment_pipe=None, style_mixing_prob=0.9, r1_gamma=10,
                 pl_batch_shrink=2, pl_decay=0.01, pl_weight=2):
        self.G, self.D = G_mapping, D
        self.log = open(os.environ["FAKE_REF_LOG"], "a")
        self.log.write(json.dumps(dict(init=dict(style_mixing_prob=style_mixing_prob, r1_gamma=r1_gamma,
                                                 pl_weight=pl_weight, augment_pipe=augment_pipe))) + "\\n")
    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        self.log.write(json.dumps(dict(phase=phase, real=list(real_img.shape), z=list(gen_z.shape),
                                       real_range=[float(real_img.min()), float(real_img.max())])) + "\\n")
        self.log.flush()
        fake = self.G(gen_z)
        (self.D.lin(fake).mean() if phase.startswith("G") else self.D.lin(real_img.flatten(1)).mean()).backward()
'''

MISC = '''
import torch
def nan_to_num(input, nan=0.0, posinf=None, neginf=None, *, out=None):
    return torch.nan_to_num(input, nan=nan, posinf=posinf, neginf=neginf, out=out)
'''


def _fake_reference(root: Path) -> Path:
    for rel, text in {"training/__init__.py": "", "training/networks.py": NETWORKS, "training/loss.py": LOSS,
                      "torch_utils/__init__.py": "", "torch_utils/misc.py": MISC}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_a_missing_checkout_is_one_clear_line(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--reference-dir", str(tmp_path / "nowhere")],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "not a checkout of NVlabs/stylegan2-ada-pytorch" in done.stderr


def test_times_one_g_and_one_d_phase_per_step_without_regularisers(tmp_path, monkeypatch):
    ref = _fake_reference(tmp_path / "ref")
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_REF_LOG", str(log))
    done = subprocess.run([sys.executable, str(SCRIPT), "--reference-dir", str(ref), "--preset", "tiny", "--batch", "4",
                           "--iters", "3", "--threads", "1", "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["batch"] == 4 and out["img_s"] > 0 and abs(out["img_s"] - 4 / out["sec"]) < 1e-6 * out["img_s"]
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls[0]["init"] == dict(style_mixing_prob=0.0, r1_gamma=0.0, pl_weight=0.0, augment_pipe=None)
    phases = [c["phase"] for c in calls[1:]]
    assert phases == ["Gboth", "Dboth"] * 5  # 2 warm-up + 3 timed steps
    res = 32  # the tiny preset
    assert all(c["real"] == [4, 3, res, res] and c["z"][0] == 4 for c in calls[1:])
    assert all(-1.0 <= c["real_range"][0] and c["real_range"][1] <= 1.0 for c in calls[1:])  # uint8 -> [-1, 1]


def test_bench_train_refuses_a_reference_dir_without_the_reference(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_train.py"), "--reference", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "not a checkout of NVlabs/stylegan2-ada-pytorch" in done.stderr
