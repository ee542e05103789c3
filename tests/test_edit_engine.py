"""The editing engine on the `tiny` preset: directions, cached/batched rendering, mixing, latents, interpolation."""

import copy

import numpy as np
import pytest
import torch

from sneakergan.edit.directions import (Direction, DirectionSet, DirectionsError, compute_directions, compute_ganspace,
                                        sample_w, sefa_weights)
from sneakergan.edit.interpolate import interpolate_ws, upscale, walk_ws, write_strip, write_video
from sneakergan.edit.latents import LatentStore
from sneakergan.edit.render import Renderer
from sneakergan.edit.state import EditState, EditStateError
from sneakergan.generate import generate_images
from sneakergan.nets import Generator, preset


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    return Generator(preset("tiny")).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def dirs(G):
    return compute_directions(G, "sefa", num=4, samples=1000) + compute_ganspace(G, 3, sample_w(G, 1000))


def S(seed=3, **kw):
    return EditState(model="t", seed=seed, psi=kw.pop("psi", 0.7), **kw)


# ---- directions ---------------------------------------------------------------------------------------------------
def test_sefa_directions_are_orthonormal_eigenvectors_ordered_by_eigenvalue(G, dirs):
    for rng in ("all", "coarse", "middle", "fine"):
        ds = [d for d in dirs if d.method == "sefa" and d.source_layers == rng]
        assert len(ds) == 4
        V = torch.from_numpy(np.stack([d.vector for d in ds])).double()
        assert torch.allclose(V @ V.T, torch.eye(4, dtype=torch.float64), atol=1e-5)
        scores = [d.score for d in ds]
        assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
        A = sefa_weights(G, rng)
        AtA = A.T @ A
        for d, v in zip(ds, V):  # each is an eigenvector with its eigenvalue
            assert torch.allclose(AtA @ v, d.score * v, rtol=1e-4, atol=1e-4 * d.score)
        # no other unit vector moves the styles more than the first one
        rand = torch.nn.functional.normalize(torch.randn(200, A.shape[1], dtype=torch.float64), dim=1)
        assert (A @ rand.T).square().sum(0).max() <= ds[0].score * (1 + 1e-6)


def test_ganspace_components_are_orthonormal_with_their_std(G, dirs):
    gs = [d for d in dirs if d.method == "ganspace"]
    V = np.stack([d.vector for d in gs]).astype(np.float64)
    assert np.allclose(V @ V.T, np.eye(len(gs)), atol=1e-5)
    sig = [d.sigma for d in gs]
    assert sig == sorted(sig, reverse=True)
    w = sample_w(G, 1000).numpy()  # the samples it was computed from: sigma is their std along the component
    proj = (w - w.mean(0)) @ V.T
    assert np.allclose(proj.std(0, ddof=1), sig, rtol=1e-4)


def test_direction_file_round_trip_merge_keeps_peoples_choices(tmp_path, dirs):
    ds = DirectionSet(model="t")
    ds.merge(dirs)
    ds.get("sefa_fine_0").name = "colourway"
    ds.get("sefa_fine_0").hidden = True
    ds.get("ganspace_0").layers = "coarse"
    ds.reorder(["ganspace_1", "sefa_fine_0"])
    path = ds.save(tmp_path / "m.directions.json")
    back = DirectionSet.load(path)
    assert back.ids()[:2] == ["ganspace_1", "sefa_fine_0"]
    assert np.array_equal(back.get("sefa_all_0").vector, ds.get("sefa_all_0").vector)
    back.merge([Direction(**{**d.__dict__}) for d in dirs])  # recompute: same ids
    kept = back.get("sefa_fine_0")
    assert (kept.name, kept.hidden, back.get("ganspace_0").layers) == ("colourway", True, "coarse")
    assert "sefa_fine_0" not in [d.id for d in back.visible()]
    with pytest.raises(DirectionsError, match="unknown direction 'nope'"):
        back.get("nope")
    (tmp_path / "bad.directions.json").write_text("{oops")
    with pytest.raises(DirectionsError, match="not valid JSON"):
        DirectionSet.load(tmp_path / "bad.directions.json")


# ---- rendering ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("noise", ["const", "random", "none"])
def test_plain_state_renders_exactly_what_generate_writes(G, noise):
    r = Renderer(G, None, model_id="t")
    ref = dict(generate_images(G, [3], psi=0.7, noise_mode=noise))[3]
    a = r.render(S(noise=noise))
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, ref)
    r.clear_caches()
    assert np.array_equal(r.render(S(noise=noise)), ref)  # deterministic, random noise included


def test_rendering_is_deterministic_and_caching_changes_nothing(G, dirs):
    cached = Renderer(G, dirs, model_id="t")
    plain = Renderer(G, dirs, model_id="t", cache_size=0)
    base = S(edits=(("sefa_fine_0", 2.0),), mixes=((11, "coarse"),))
    states = [base, base.with_edit("sefa_fine_1", -1.5), base.with_edit("sefa_coarse_0", 1.0), S(seed=5),
              base.replace(psi=0.5), base.replace(mixes=((11, "middle"), (12, "4-5")))]
    first = [cached.render(s) for s in states]
    again = [cached.render(s) for s in reversed(states)][::-1]
    fresh = [plain.render(s) for s in states]
    for a, b, c in zip(first, again, fresh):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    assert len({a.tobytes() for a in first}) == len(states)  # every change changed the picture


def test_zero_amount_edit_equals_the_original(G, dirs):
    r = Renderer(G, dirs, model_id="t", cache_size=0)
    orig = r.render(S())
    for d in ("sefa_all_0", "sefa_fine_2", "ganspace_1"):
        assert np.array_equal(r.render(S(edits=((d, 0.0),))), orig)
        assert not np.array_equal(r.render(S(edits=((d, 1.0),))), orig)


def test_fine_edit_reuses_the_early_blocks(G, dirs):
    r = Renderer(G, dirs, model_id="t")
    r.render(S())
    before = r.cache_stats()["blocks"]["hits"]
    r.render(S(edits=(("sefa_fine_0", 1.0),)))  # fine = ws 6-7: blocks 4, 8 and 16 px are unchanged
    assert r.cache_stats()["blocks"]["hits"] - before == 3
    before = r.cache_stats()["blocks"]["hits"]
    r.render(S(edits=(("sefa_coarse_0", 1.0),)))  # coarse starts at ws 0: nothing to reuse
    assert r.cache_stats()["blocks"]["hits"] == before


def test_batch_equals_one_by_one(G, dirs):
    states = [S(seed=s, edits=(("sefa_middle_0", a),)) for s in (1, 2) for a in (-2.0, 0.0, 2.0)]
    batch = Renderer(G, dirs, model_id="t").render_batch(states)
    single = [Renderer(G, dirs, model_id="t", cache_size=0).render(s) for s in states]
    for a, b in zip(batch, single):  # batched convolutions may round the last bit differently
        assert np.abs(a.astype(int) - b).max() <= 1


def test_moving_along_a_direction_changes_the_image_monotonically(G, dirs):
    r = Renderer(G, dirs, model_id="t", cache_size=0)
    orig = r.render(S()).astype(float)
    for d in ("sefa_all_0", "sefa_coarse_0", "ganspace_0"):
        for sign in (1, -1):
            dist = [np.abs(r.render(S(edits=((d, sign * a),))).astype(float) - orig).mean()
                    for a in (0.5, 1.0, 2.0, 3.0, 4.0)]
            assert all(x < y for x, y in zip(dist, dist[1:])), (d, sign, dist)


def test_edits_add_amount_times_sigma_on_the_directions_layers(G, dirs):
    r = Renderer(G, dirs, model_id="t")
    d = next(x for x in dirs if x.id == "sefa_middle_1")
    delta = r.ws(S(edits=((d.id, 2.5),))) - r.ws(S())
    expect = torch.zeros_like(delta)
    expect[4:6] = 2.5 * d.sigma * torch.from_numpy(d.vector)  # middle = ws 4-5 at 32 px
    assert torch.allclose(delta, expect, atol=1e-5)


def test_mixing_replaces_exactly_the_chosen_layers(G):
    r = Renderer(G, None, model_id="t")
    a, b = r.ws(S(seed=1)), r.ws(S(seed=2))
    for layers, idx in (("coarse", range(0, 4)), ("fine", range(6, 8)), ("2-5", range(2, 6))):
        m = r.ws(S(seed=1, mixes=((2, layers),)))
        for i in range(8):
            assert torch.equal(m[i], b[i] if i in idx else a[i])


def test_renderer_rejects_bad_states_with_clear_errors(G, dirs, tmp_path):
    r = Renderer(G, dirs, model_id="t", latents=tmp_path)
    with pytest.raises(EditStateError, match="state is for model 'x'"):
        r.render(EditState(model="x", seed=1))
    with pytest.raises(EditStateError, match="unknown direction 'shoelace'"):
        r.render(S(edits=(("shoelace", 1.0),)))
    with pytest.raises(EditStateError, match="out of bounds"):
        r.render(S(mixes=((2, "6-9"),)))
    with pytest.raises(EditStateError, match="unknown latent 'p0'"):
        r.render(EditState(model="t", latent="p0"))


def test_latent_ids_resolve_to_saved_ws_and_noise(G, tmp_path):
    G = copy.deepcopy(G)
    for name, p in G.synthesis.named_parameters():
        if name.endswith("noise_strength"):  # zero at init: make noise visible
            p.fill_(0.5)
    store = LatentStore(tmp_path)
    ws = Renderer(G, None, model_id="t").ws(S(seed=9)) + 0.1 * torch.randn(G.num_ws, G.w_dim)
    lid = store.save(ws)
    r = Renderer(G, None, model_id="t", latents=store)
    out = r.render(EditState(model="t", latent=lid))
    assert np.array_equal(out, r.render_ws(ws[None])[0])
    assert np.array_equal(out, r.render(EditState(model="t", latent=lid)))
    assert not np.array_equal(r.render(EditState(model="t", latent=lid, psi=0.5)), out)
    # with its own noise maps, 'const' uses them and the model's buffers are restored afterwards
    noise = {name[: -len(".noise_const")]: torch.randn_like(buf)
             for name, buf in G.synthesis.named_buffers() if name.endswith("noise_const")}
    before = {k: v.clone() for k, v in G.synthesis.named_buffers()}
    lid2 = store.save(ws, noise)
    assert lid2 == lid  # the id is the ws' content hash
    r2 = Renderer(G, None, model_id="t", latents=store)
    own = r2.render(EditState(model="t", latent=lid))
    assert not np.array_equal(own, out)
    assert all(torch.equal(v, before[k]) for k, v in G.synthesis.named_buffers())


# ---- interpolation --------------------------------------------------------------------------------------------------
def test_interpolation_starts_and_ends_at_the_states(G, dirs):
    r = Renderer(G, dirs, model_id="t")
    states = [S(seed=1), S(seed=2, edits=(("sefa_fine_0", 2.0),)), S(seed=3, psi=0.5)]
    for mode in ("w", "z"):
        ws = interpolate_ws(r, states, frames=5, mode=mode)
        assert ws.shape == (10, G.num_ws, G.w_dim)  # 5 per segment, the end included once
        assert torch.allclose(ws[0], r.ws(states[0]), atol=1e-5)
        assert torch.allclose(ws[5], r.ws(states[1]), atol=1e-5)  # the second segment starts at state 2
        assert torch.allclose(ws[-1], r.ws(states[-1]), atol=1e-5)
        steps = (ws[1:] - ws[:-1]).norm(dim=(1, 2))
        assert steps.min() > 0


def test_walk_is_a_closed_loop_and_videos_are_readable(G, tmp_path):
    import imageio.v3 as iio

    r = Renderer(G, None, model_id="t")
    ws = walk_ws(r, S(seed=4), frames=12, radius=0.3)
    steps = (torch.cat([ws, ws[:1]])[1:] - torch.cat([ws, ws[:1]])[:-1]).norm(dim=(1, 2))
    assert steps.max() < 2 * steps.min()  # the wrap-around step is like any other: it loops
    frames = r.render_ws(ws)
    assert frames.shape == (12, 32, 32, 3)
    gif = write_video(upscale(frames, 64), tmp_path / "w.gif", fps=12)
    assert iio.imread(gif, index=None).shape == (12, 64, 64, 3)
    mp4 = write_video(frames, tmp_path / "w.mp4", fps=12)
    assert mp4.stat().st_size > 0
    strip = iio.imread(write_strip(frames, tmp_path / "s.png", count=6))
    assert strip.shape[1] > 6 * 32 and strip.shape[0] < 2 * 32 + 8
