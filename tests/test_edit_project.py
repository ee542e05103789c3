"""Projection on the `tiny` preset: reconstructs an image G made, saves an editable latent, rejects bad photos."""

import numpy as np
import pytest
import torch
from PIL import Image

from sneakergan.edit.latents import LatentStore
from sneakergan.edit.project import (ProjectConfig, ProjectError, fit_photo, load_perceptual, load_photo,
                                     noise_regularisation, project)
from sneakergan.edit.render import Renderer
from sneakergan.edit.state import EditState
from sneakergan.nets import Discriminator, Generator, preset


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(1)
    return Generator(preset("tiny")).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def target(G):
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(7)), None)
        return G.synthesis(ws, noise_mode="const")


def test_projection_of_a_generated_image_reaches_a_low_error(G, target):
    seen = []
    res = project(G, target, config=ProjectConfig(steps=150, w_plus=True, w_samples=2000),
                  callback=lambda step, total, info: seen.append((step, total, info["error"])))
    assert [s for s, _, _ in seen] == list(range(1, 151)) and seen[-1][1] == 150
    err, mean_err = res.info["final_error"], res.info["mean_image_error"]
    assert err < 0.1 * mean_err, (err, mean_err)  # well below the average sneaker's error
    assert np.mean(res.errors[-10:]) < 0.2 * np.mean(res.errors[:10])
    assert res.ws.shape == (G.num_ws, G.w_dim) and res.image.shape == (32, 32, 3)
    for n in res.noise.values():  # renormalised every step
        assert abs(n.mean().item()) < 1e-3 and abs(n.std().item() - 1) < 1e-2


def test_projection_with_d_loss_saves_a_latent_that_renders_like_the_projection(G, target, tmp_path):
    torch.manual_seed(2)
    D = Discriminator(preset("tiny")).eval().requires_grad_(False)
    res = project(G, target, D=D, config=ProjectConfig(steps=40, w_samples=1000))
    assert res.info["d_loss"] and res.info["final_error"] < res.info["mean_image_error"]
    assert torch.equal(res.ws[0], res.ws[-1])  # W, not W+: one w for every layer
    store = LatentStore(tmp_path / "m.latents")
    lid = store.save(res.ws, res.noise, res.info)
    r = Renderer(G, None, model_id="m", latents=store)
    assert np.array_equal(r.render(EditState(model="m", latent=lid)), res.image)


def test_early_stop_from_the_callback(G, target):
    res = project(G, target, config=ProjectConfig(steps=50, w_samples=500), callback=lambda s, t, i: s < 5 or False)
    assert len(res.losses) == 5


def test_photos_are_normalised_to_the_model_frame(G, tmp_path):
    photo = Image.new("RGB", (300, 180), (250, 250, 250))
    photo.paste((200, 30, 30), (40, 60, 250, 140))  # a red "shoe" on a near-white background
    out = fit_photo(photo, 32, 32)
    a = np.asarray(out)
    assert out.size == (32, 32)
    assert (a[0, 0] == 255).all() and a[16, 16, 0] > 150 and a[16, 16, 1] < 100  # white border, shoe centred
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    rgba.save(tmp_path / "clear.png")
    assert np.asarray(load_photo(tmp_path / "clear.png")).min() == 255  # transparency becomes white
    res = project(G, photo, config=ProjectConfig(steps=3, w_samples=200))
    assert res.target.shape == (32, 32, 3)


def test_bad_photos_give_clear_errors(G, tmp_path):
    (tmp_path / "notes.jpg").write_bytes(b"this is not a jpeg")
    Image.new("RGB", (8, 40)).save(tmp_path / "tiny.png")
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ProjectError, match="not an image"):
        load_photo(tmp_path / "notes.jpg")
    with pytest.raises(ProjectError, match="too small"):
        load_photo(tmp_path / "tiny.png")
    with pytest.raises(ProjectError, match="truncated or corrupt"):
        load_photo(tmp_path / "cut.jpg")
    with pytest.raises(ProjectError, match="no such file"):
        load_photo(tmp_path / "missing.png")
    with pytest.raises(ProjectError, match="at least 16 px"):
        fit_photo(Image.new("RGB", (10, 10)), 32, 32)
    with pytest.raises(ProjectError, match="target tensor must be"):
        project(G, torch.zeros(1, 3, 16, 16), steps=1)


def test_noise_regularisation_penalises_correlated_noise():
    torch.manual_seed(0)
    white = torch.randn(32, 32)
    smooth = torch.nn.functional.avg_pool2d(torch.randn(1, 1, 35, 35), 4, stride=1)[0, 0]
    smooth = (smooth - smooth.mean()) / smooth.std()
    assert noise_regularisation([smooth]) > 20 * noise_regularisation([white])


def test_perceptual_loss_from_a_local_weights_file(G, target, tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    state = {}  # random VGG16 weights in torchvision's key layout
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
    i, in_c = 0, 3
    for v in cfg:
        if v == "M":
            i += 1
            continue
        state[f"features.{i}.weight"] = torch.randn(v, in_c, 3, 3) * (2 / (9 * in_c)) ** 0.5
        state[f"features.{i}.bias"] = torch.zeros(v)
        in_c, i = v, i + 2
    save_file(state, str(tmp_path / "vgg16.safetensors"))
    p = load_perceptual([tmp_path / "vgg16.safetensors"])
    t = p.taps(target)
    assert p.distance(p.taps(target), t).item() == 0
    assert p.distance(p.taps(-target), t).item() > 0
    res = project(G, target, perceptual=p, config=ProjectConfig(steps=2, w_samples=200))
    assert res.info["perceptual"]
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(ProjectError, match="cannot read weights"):
        load_perceptual([tmp_path / "junk.safetensors"])
    save_file({"lin0.model.1.weight": torch.ones(1, 64, 1, 1)}, str(tmp_path / "lin.safetensors"))
    with pytest.raises(ProjectError, match="do not hold VGG16 features"):
        load_perceptual([tmp_path / "lin.safetensors"])
