"""Hostile edit-state tokens: every malformed token is one EditStateError (a UserError), never anything else.

The corpus is written here: deep nesting (the JSON parser recurses per level), long tokens, odd types in every
slot, and a Hypothesis fuzz over arbitrary bytes and arbitrary JSON wrapped as tokens.
"""

import base64
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sneakergan.edit.state import MAX_TOKEN_CHARS, MAX_TOKEN_DEPTH, EditState, EditStateError, json_depth
from sneakergan.errors import UserError


def _wrap(raw: bytes) -> str:
    return "1." + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_deep_nesting_is_a_clear_error_not_recursion():
    # The token: 1,336 characters whose JSON nests 1,000 levels (a RecursionError and a 500 before).
    token = _wrap(b"[" * 1000 + b"]" * 1000)
    assert len(token) <= MAX_TOKEN_CHARS
    with pytest.raises(EditStateError, match=f"nests deeper than {MAX_TOKEN_DEPTH} levels"):
        EditState.decode(token)
    # Deep inside an otherwise valid state, and with objects instead of arrays.
    for body in (b'["m",1,1.0,[["d",' + b"[" * 900 + b"]" * 900 + b"]]]",
                 b'["m",1,1.0,[],[],' + b'{"a":' * 500 + b"0" + b"}" * 500 + b"]"):
        with pytest.raises(EditStateError, match="nests deeper"):
            EditState.decode(_wrap(body))


def test_brackets_inside_strings_do_not_count():
    assert json_depth('["[[[[", "\\"[[[", [1]]') == 2
    assert json_depth('{"a": [{"b": []}]}') == 4
    s = EditState(model="m", seed=1, edits=(("d", 1.0),), mixes=((2, "0-3"),))
    assert EditState.decode(s.encode()) == s


@pytest.mark.parametrize("body", [
    ["m", 1, 1.0, [["d", 1.0]], [[{"x": 1}, "all"]]],     # a dict where a mix seed belongs
    ["m", 1, 1.0, [[["d"], 1.0]]],                          # a list as a direction id
    ["m", 1, 1.0, [["d", "1.0"]]],                          # a string amount
    ["m", 1, 1.0, [], [[1, ["all"]]]],                      # a list as a layer spec
    [{"m": 1}, 1],                                          # a dict as the model id
    ["m", True],                                            # a bool seed
    ["m", 2**64],                                           # seed out of range
    ["m", 1.5],                                             # a fractional seed
    ["m", 1, 1e308 * 10],                                   # inf psi (json writes Infinity)
    ["m", 1, 1.0, [], [], ["const"]],                       # a list as the noise mode
    ["m", 1, 1.0, [["d", 1.0]] * 17],                       # too many edits
])
def test_wrong_types_in_every_slot_are_edit_state_errors(body):
    with pytest.raises(EditStateError):
        EditState.decode(_wrap(json.dumps(body).encode()))


def test_huge_integer_and_long_tokens_are_bounded():
    digits = _wrap(b'["m",' + b"9" * 3000 + b"]")
    with pytest.raises(EditStateError):
        EditState.decode(digits)
    t0 = time.perf_counter()
    with pytest.raises(EditStateError, match="too long"):
        EditState.decode("1." + "A" * 10_000_000)  # rejected by length before any decoding
    assert time.perf_counter() - t0 < 1.0


def test_edit_state_error_is_a_user_error():
    assert issubclass(EditStateError, UserError)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=400).map(_wrap), st.text(max_size=200),
                 json_values.map(lambda v: _wrap(json.dumps(v).encode()))))
def test_fuzzed_tokens_decode_or_raise_edit_state_error(token):
    try:
        s = EditState.decode(token)
    except EditStateError:
        return
    assert EditState.decode(s.encode()) == s  # whatever decodes is a valid, re-encodable state
