"""Edit state: validation, exact URL-safe round trip (property-based), clear errors for bad states and tokens."""

import base64
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sneakergan.edit.layers import layer_indices
from sneakergan.edit.state import MAX_EDITS, MAX_MIXES, EditState, EditStateError

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)
seeds = st.integers(0, 2**32 - 1)
layers = st.one_of(st.sampled_from(["all", "coarse", "middle", "fine"]),
                   st.tuples(st.integers(0, 20), st.integers(0, 20)).map(lambda t: f"{min(t)}-{max(t)}"))
amounts = st.floats(-5, 5, allow_nan=False, allow_infinity=False)


@st.composite
def states(draw):
    latent = draw(st.booleans())
    return EditState(
        model=draw(ids),
        seed=None if latent else draw(seeds),
        latent=draw(ids) if latent else None,
        psi=draw(st.floats(-1, 2, allow_nan=False)),
        edits=tuple(draw(st.lists(st.tuples(ids, amounts), max_size=MAX_EDITS))),
        mixes=tuple(draw(st.lists(st.tuples(seeds, layers), max_size=MAX_MIXES))),
        noise=draw(st.sampled_from(["const", "random", "none"])),
    )


@settings(max_examples=300, deadline=None)
@given(states())
def test_encode_decode_round_trip_is_exact(s):
    token = s.encode()
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", token), token  # URL-safe without escaping
    back = EditState.decode(token)
    assert back == s
    assert hash(back) == hash(s)
    assert EditState.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_plain_seed_token_is_short_and_contract_example_round_trips():
    assert len(EditState(model="demo", seed=42).encode()) < 24
    s = EditState(model="demo", seed=42, psi=0.7, edits=(("sefa_fine_0", 1.5),), mixes=((7, "coarse"),),
                  noise="const", latent=None)
    assert EditState.decode(s.encode()) == s


def test_lists_and_ints_are_normalised():
    a = EditState(model="m", seed=1, psi=1, edits=[["d", 2]], mixes=[[3, "fine"]])
    b = EditState(model="m", seed=1, psi=1.0, edits=(("d", 2.0),), mixes=((3, "fine"),))
    assert a == b and isinstance(a.edits, tuple) and isinstance(a.edits[0][1], float)


def test_with_edit_sets_replaces_and_removes():
    s = EditState(model="m", seed=1).with_edit("a", 1.0).with_edit("b", -2.0).with_edit("a", 3.0)
    assert s.edits == (("b", -2.0), ("a", 3.0))
    assert s.with_edit("a", 0).edits == (("b", -2.0),)


@pytest.mark.parametrize("kwargs, message", [
    (dict(model="m"), "exactly one of seed or latent"),
    (dict(model="m", seed=1, latent="x"), "exactly one of seed or latent"),
    (dict(model="m", seed=-1), "out of range"),
    (dict(model="m", seed=2**32), "out of range"),
    (dict(model="m", seed=1.5), "must be an integer"),
    (dict(model="m", seed=True), "must be an integer"),
    (dict(model="m", seed=1, psi=2.5), "psi 2.5 is out of range"),
    (dict(model="m", seed=1, psi=float("nan")), "finite"),
    (dict(model="m", seed=1, psi="0.7"), "must be a number"),
    (dict(model="m", seed=1, edits=(("d", 5.5),)), "outside +-5 sigma"),
    (dict(model="m", seed=1, edits=tuple((f"d{i}", 1.0) for i in range(MAX_EDITS + 1))), "too many edits"),
    (dict(model="m", seed=1, edits=(("bad id!", 1.0),)), "direction id"),
    (dict(model="m", seed=1, edits=("d",)), "pairs"),
    (dict(model="m", seed=1, mixes=((2, "shoelaces"),)), "mix layers 'shoelaces'"),
    (dict(model="m", seed=1, mixes=((2, "5-3"),)), "mix layers '5-3'"),
    (dict(model="m", seed=1, mixes=tuple((i, "fine") for i in range(MAX_MIXES + 1))), "too many style mixes"),
    (dict(model="m", seed=1, noise="loud"), "noise 'loud'"),
    (dict(model="../etc", seed=1), "model id"),
    (dict(model="m", latent="../x"), "latent id"),
])
def test_bad_states_raise_one_clear_error(kwargs, message):
    with pytest.raises(EditStateError, match=re.escape(message)):
        EditState(**kwargs)


def test_validate_against_a_model():
    s = EditState(model="m", seed=1, edits=(("known", 1.0),), mixes=((2, "6-7"),))
    s.validate(directions={"known"}, num_ws=8)
    with pytest.raises(EditStateError, match="unknown direction 'known'"):
        s.validate(directions={"other"})
    with pytest.raises(EditStateError, match="out of bounds"):
        s.validate(num_ws=6)


def _token(body) -> str:
    return "1." + base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("token, message", [
    ("", "empty"),
    ("hello", "expected VERSION.PAYLOAD"),
    ("9.abc", "version '9' is not supported"),
    ("1.%%%", "corrupt"),
    ("1." + base64.urlsafe_b64encode(b"\xff\xfe").decode(), "corrupt"),
    (_token({"model": "m"}), "wrong shape"),
    (_token(["m"]), "wrong shape"),
    (_token(["m", 1, 0.5, "x", []]), "wrong shape"),
    (_token(["m", 1, 0.5, [["d"]], []]), "pairs"),
    (_token(["m", 1, 0.5, [["d", 99]], []]), "outside +-5 sigma"),
    (_token(["m", None]), "exactly one of seed or latent"),
    ("1." + base64.urlsafe_b64encode(b'["m",1,NaN]').decode(), "corrupt"),
    ("1." + "A" * 5000, "too long"),
])
def test_bad_tokens_raise_one_clear_error(token, message):
    with pytest.raises(EditStateError, match=re.escape(message)):
        EditState.decode(token)


def test_layer_ranges_split_every_preset_into_disjoint_covering_groups():
    for num_ws in (6, 8, 10, 12, 14, 18):  # 16 px .. 1024 px
        groups = [layer_indices(n, num_ws) for n in ("coarse", "middle", "fine")]
        assert all(groups), (num_ws, groups)  # every group non-empty, even for small models
        assert sorted(sum(groups, [])) == list(range(num_ws))
        assert max(groups[0]) < min(groups[1]) and max(groups[1]) < min(groups[2])
    assert layer_indices("coarse", 18) == [0, 1, 2, 3] and layer_indices("fine", 18)[0] == 8  # StyleGAN's split
    assert layer_indices("2-4", 8) == [2, 3, 4]
