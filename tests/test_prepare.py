"""prepare's parts: safe decoding, the Hamming index, dedupe, normalisation, orientation, silhouettes."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image, ImageDraw

from sneakergan.prepare.dedupe import HashIndex, dedupe, phash_int, thumbnail
from sneakergan.prepare.normalise import NormaliseConfig, facing, normalise
from sneakergan.prepare.pipeline import PrepareConfig, plausibility
from sneakergan.prepare.silhouette import cap_groups, colour_descriptor, group_silhouettes, shape_hash
from sneakergan.prepare.validate import decode


def draw_shoe(size=(800, 500), box=(100, 150, 700, 400), upper=(200, 30, 30), sole=(240, 240, 240),
              stripe=(20, 20, 20), toe="left", high=False, bg=(255, 255, 255)) -> Image.Image:
    """A side-view sneaker in `box`: sole, upper whose toe box slopes down to the toe, taller heel/collar."""
    img = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(img)
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    sole_top = y1 - 0.22 * h
    collar = y0 if high else y0 + 0.25 * h
    d.polygon([(x0 + 0.02 * w, sole_top), (x0 + 0.05 * w, y0 + 0.62 * h), (x0 + 0.3 * w, y0 + 0.5 * h),
               (x0 + 0.55 * w, collar + 0.1 * h), (x0 + 0.78 * w, collar), (x1 - 0.02 * w, collar + 0.05 * h),
               (x1 - 0.01 * w, sole_top)], fill=upper, outline=(40, 40, 40))
    d.rounded_rectangle((x0, sole_top, x1, y1), radius=int(0.08 * h), fill=sole, outline=(90, 90, 90), width=3)
    d.polygon([(x0 + 0.35 * w, sole_top - 0.05 * h), (x0 + 0.75 * w, y0 + 0.45 * h),
               (x0 + 0.8 * w, y0 + 0.55 * h), (x0 + 0.45 * w, sole_top - 0.05 * h)], fill=stripe)
    if toe == "right":
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return img


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


# ---------------------------------------------------------------------------------------------- validate

def test_bad_inputs_are_reported_not_raised():
    good = encode(draw_shoe(), "JPEG")
    cases = {
        b"": "not_image",
        b"definitely not an image" * 20: "not_image",
        good[: len(good) // 2]: "decode_error",                     # truncated JPEG
        encode(Image.new("RGB", (100, 40)), "PNG"): "too_small",
        encode(Image.new("RGB", (3000, 2000)), "PNG"): "too_many_pixels",
    }
    for data, code in cases.items():
        d = decode(data, min_side=64, max_pixels=5_000_000)
        assert (d.status, d.image) == (code, None), (code, d)
        assert d.reason


def test_odd_modes_become_rgb():
    # CMYK pure cyan+... : (0, 255, 255, 0) is red in RGB
    d = decode(encode(Image.new("CMYK", (80, 80), (0, 255, 255, 0)), "JPEG"))
    assert d.status == "ok" and d.mode == "CMYK"
    assert np.abs(np.asarray(d.image)[40, 40].astype(int) - [255, 0, 0]).max() < 10
    # Alpha: transparent pixels land on white, opaque ones keep their colour.
    rgba = Image.new("RGBA", (80, 80), (0, 0, 255, 0))
    rgba.paste((0, 128, 0, 255), (20, 20, 60, 60))
    arr = np.asarray(decode(encode(rgba, "PNG")).image)
    assert arr[0, 0].tolist() == [255, 255, 255] and arr[40, 40].tolist() == [0, 128, 0]
    # 16-bit greyscale is scaled, not clipped: a mid-grey stays mid-grey.
    g16 = Image.fromarray(np.full((80, 80), 32768, np.uint16))
    d = decode(encode(g16, "PNG"))
    assert d.status == "ok" and d.mode.startswith("I")
    assert abs(int(np.asarray(d.image)[0, 0, 0]) - 128) <= 1
    # Greyscale and palette images.
    assert np.asarray(decode(encode(Image.new("L", (80, 80), 77), "PNG")).image)[5, 5].tolist() == [77, 77, 77]
    pal = Image.new("RGB", (80, 80), (255, 0, 0)).convert("P")
    assert np.asarray(decode(encode(pal, "PNG")).image)[5, 5].tolist() == [255, 0, 0]
    for d in (decode(encode(Image.new("LA", (80, 80), (10, 0)), "PNG")),):
        assert np.asarray(d.image)[0, 0].tolist() == [255, 255, 255]


def test_draft_decoding_keeps_enough_pixels():
    data = encode(Image.new("RGB", (2000, 1000), (50, 60, 70)), "JPEG")
    d = decode(data, draft=512)
    assert d.status == "ok" and (d.width, d.height) == (2000, 1000)
    assert max(d.image.size) >= 512 and max(d.image.size) < 2000
    assert d.scale == pytest.approx(2000 / max(d.image.size))


# ---------------------------------------------------------------------------------------------- dedupe

@pytest.mark.parametrize("threshold", [0, 3, 6, 8, 11])
def test_hash_index_finds_exactly_what_brute_force_finds(threshold):
    rng = random.Random(threshold)
    base = [rng.getrandbits(64) for _ in range(150)]
    hashes = []
    for b in base:  # clusters of nearby hashes, so there is something to find
        for _ in range(3):
            h = b
            for bit in rng.sample(range(64), rng.randint(0, 12)):
                h ^= 1 << bit
            hashes.append(h)
    index = HashIndex(threshold)
    for h in hashes[:300]:
        index.add(h)
    for q in hashes[300:]:
        expected = sorted(p for p, h in enumerate(hashes[:300]) if (h ^ q).bit_count() <= threshold)
        assert sorted(p for p, _ in index.query(q)) == expected


def _near_copies(img: Image.Image) -> list[Image.Image]:
    w, h = img.size
    jpeg = Image.open(io.BytesIO(encode(img, "JPEG", quality=35))).convert("RGB")
    small = img.resize((w // 2, h // 2), Image.Resampling.BILINEAR)
    cropped = img.crop((int(0.04 * w), int(0.05 * h), w - int(0.03 * w), h - int(0.02 * h)))
    return [jpeg, small, cropped]


def test_near_duplicates_collapse_and_distinct_shoes_stay():
    # A perceptual hash sees luminance and shape: two all-black shoes of one silhouette are near-duplicates to it by
    # design, so the distinct shoes here carry colour contrast. They are drawn without the soft ground shadow: under
    # quality-35 JPEG its faint edge moves the crop by a few pixels, and the thumbnail check then keeps the copy
    # (a known limit of cropping photos with shadows).
    from sneakergan.prepare.synth import render_params, sample_params

    params = [dict(p, shadow=0.0) for p in map(sample_params, range(60))
              if p["colourway"] not in ("triple_black", "triple_white")][:24]
    originals = [render_params(p, 320) for p in params]
    items, owner = [], []
    for k, img in enumerate(originals):
        for variant in [img] + (_near_copies(img) if k < 4 else []):
            items.append(normalise(variant, NormaliseConfig(resolution=128)))
            owner.append(k)
    quality = [(float(max(n.bbox[2] - n.bbox[0], n.bbox[3] - n.bbox[1])),) for n in items]
    result = dedupe([phash_int(n.image) for n in items], quality, threshold=8,
                    thumbs=[thumbnail(n.image) for n in items])
    kept = result.kept
    assert sorted(owner[i] for i in kept) == list(range(24))  # one per shoe, every shoe
    for i, w in enumerate(result.winner):
        assert owner[w] == owner[i]
    # The full-size original beats its half-size copy.
    assert all(max(items[i].bbox[2] - items[i].bbox[0], 1) >= 240 for i in kept)


def test_jpeg_ringing_does_not_move_the_framing():
    from sneakergan.prepare.synth import render_sneaker

    for seed in range(4):
        img = render_sneaker(seed, 300)[0]
        clean = normalise(img, NormaliseConfig(resolution=128))
        ringing = normalise(Image.open(io.BytesIO(encode(img, "JPEG", quality=50))).convert("RGB"),
                            NormaliseConfig(resolution=128))
        assert all(abs(a - b) <= 2 for a, b in zip(clean.bbox, ringing.bbox)), (clean.bbox, ringing.bbox)
        assert (clean.mask != ringing.mask).mean() < 0.02


def test_colourways_of_one_shape_are_not_duplicates():
    a = normalise(draw_shoe(upper=(200, 30, 30)))
    b = normalise(draw_shoe(upper=(30, 60, 200)))
    assert (phash_int(a.image) ^ phash_int(b.image)).bit_count() <= 8  # pHash alone confuses them
    result = dedupe([phash_int(a.image), phash_int(b.image)], [1.0, 0.0], threshold=8,
                    thumbs=[thumbnail(a.image), thumbnail(b.image)])
    assert result.kept == [0, 1]


# ---------------------------------------------------------------------------------------------- normalise

@pytest.mark.parametrize("box", [(40, 30, 440, 230), (380, 260, 760, 470), (200, 100, 600, 300)])
def test_shoe_on_white_is_cropped_and_centred(box):
    img = draw_shoe(box=box)
    truth = bbox((np.asarray(img) < 250).any(axis=2))  # the drawn shoe's real extent
    n = normalise(img, NormaliseConfig(resolution=256, margin=0.06))
    assert all(abs(a - b) <= 4 for a, b in zip(n.bbox, truth)), (n.bbox, truth)
    x0, y0, x1, y1 = bbox(n.mask)
    assert abs((x0 + x1) / 2 - 128) <= 3 and abs((y0 + y1) / 2 - 128) <= 3
    # The longer side fills the canvas up to the margin; the shape is not distorted.
    assert abs((x1 - x0) - 256 / 1.12) <= 4
    tw, th = truth[2] - truth[0], truth[3] - truth[1]
    assert abs((x1 - x0) / (y1 - y0) - tw / th) < 0.1
    out_truth = bbox((np.asarray(n.image) < 250).any(axis=2))
    assert all(abs(a - b) <= 3 for a, b in zip(out_truth, (x0, y0, x1, y1)))
    arr = np.asarray(n.image)
    assert arr[:8].min() >= 250 and arr[:, :8].min() >= 250  # white margins


def test_grey_background_becomes_white_and_busy_background_falls_back():
    n = normalise(draw_shoe(bg=(200, 200, 205)))
    assert not n.fallback and np.asarray(n.image)[:10].min() >= 250
    noise = np.random.default_rng(0).integers(0, 255, (300, 500, 3), dtype=np.uint8)
    busy = normalise(Image.fromarray(noise), NormaliseConfig(resolution=64))
    assert busy.fallback and busy.image.size == (64, 64) and not busy.flipped


def test_flipped_inputs_end_up_facing_the_same_way():
    from sneakergan.prepare.synth import render_sneaker

    shoes = [draw_shoe(), draw_shoe(high=True, upper=(30, 30, 200))] + [render_sneaker(s, 320)[0] for s in range(6)]
    for img in shoes:
        left = normalise(img, NormaliseConfig(resolution=128))
        right = normalise(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), NormaliseConfig(resolution=128))
        assert (left.facing, right.facing) == ("left", "right")
        assert not left.flipped and right.flipped
        iou = (left.mask & right.mask).sum() / (left.mask | right.mask).sum()
        assert iou > 0.95
        diff = np.abs(np.asarray(left.image, np.int16) - np.asarray(right.image, np.int16)).mean()
        assert diff < 4
    off = normalise(draw_shoe(toe="right"), NormaliseConfig(flip_to_left=False))
    assert off.facing == "right" and not off.flipped


def test_facing_is_unknown_for_symmetric_shapes():
    mask = np.zeros((50, 100), bool)
    mask[10:40, 10:90] = True
    assert facing(mask, 0.08) == "unknown"


def test_implausible_images_are_named():
    cfg = PrepareConfig()

    def check(img: Image.Image) -> str:
        n = normalise(img)
        info = {"fallback": n.fallback, "foreground": n.foreground, "aspect": n.aspect, "objects": n.objects}
        return plausibility(info, cfg)[0]

    assert check(draw_shoe()) == "ok"
    pair = Image.new("RGB", (1000, 400), "white")
    pair.paste(draw_shoe(size=(480, 300), box=(20, 60, 460, 280)), (0, 50))
    pair.paste(draw_shoe(size=(480, 300), box=(20, 60, 460, 280), upper=(20, 120, 40)), (500, 50))
    assert check(pair) == "several_objects"
    assert check(draw_shoe(size=(2000, 1500), box=(900, 700, 1100, 780))) == "too_little_foreground"
    pole = Image.new("RGB", (600, 600), "white")
    ImageDraw.Draw(pole).rectangle((280, 40, 320, 560), fill=(30, 30, 30))
    assert check(pole) == "extreme_aspect"


# ---------------------------------------------------------------------------------------------- silhouettes

def test_silhouettes_group_by_shape_and_cap_keeps_distinct_colourways():
    colours = [(200, 30, 30), (210, 40, 35), (190, 25, 30), (30, 60, 200), (40, 170, 60)]
    low = [normalise(draw_shoe(upper=c), NormaliseConfig(resolution=128)) for c in colours]
    high = [normalise(draw_shoe(upper=c, high=True, box=(150, 60, 650, 420)), NormaliseConfig(resolution=128))
            for c in colours[:2]]
    items = low + high
    groups = group_silhouettes([shape_hash(n.mask) for n in items], threshold=6)
    assert len(set(groups[:5])) == 1 and len(set(groups[5:])) == 1 and groups[0] != groups[5]
    desc = np.stack([colour_descriptor(n.image, n.mask) for n in items])
    keep = cap_groups(groups, desc, cap=3, priority=[1.0, 0, 0, 0, 0, 0, 0])
    assert keep[5:] == [True, True]               # the other group is under the cap
    assert keep[0] and keep[3] and keep[4]        # first pick, then blue and green: the distinct ones
    assert sum(keep[:5]) == 3
