"""The layers' and cells' options: layout, merge, dtype, seed, dropout, init schemes,
forget_bias, the constructor's checks, and load_state_dict's checks."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit

STEPS, BATCH, INPUTS, HIDDEN = 5, 2, 4, 3  # all different, so a swapped axis shows
LAYERS = {"RNN": rnnkit.RNN, "LSTM": rnnkit.LSTM, "GRU": rnnkit.GRU}
CELLS = {"RNNCell": rnnkit.RNNCell, "LSTMCell": rnnkit.LSTMCell, "GRUCell": rnnkit.GRUCell}
MODULES = LAYERS | CELLS
STACKED_BIDIRECTIONAL = {"num_layers": 2, "bidirectional": True}

over_layers = pytest.mark.parametrize("cls", LAYERS.values(), ids=LAYERS.keys())
over_modules = pytest.mark.parametrize("cls", MODULES.values(), ids=MODULES.keys())


def is_cell(module) -> bool:
    return isinstance(module, tuple(CELLS.values()))


def is_lstm(module) -> bool:
    return isinstance(module, rnnkit.LSTM | rnnkit.LSTMCell)


def build(cls, **options):
    """A cell, or a layer with two bidirectional layers so that every kind of parameter shows."""
    if cls in CELLS.values():
        return cls(INPUTS, HIDDEN, **options)
    return cls(INPUTS, HIDDEN, **STACKED_BIDIRECTIONAL, **options)


def loaded(module, source):
    """``module`` after loading ``source``'s weights."""
    module.load_state_dict(source.state_dict())
    return module


def random(rng, shape, dtype=np.float32) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def input_for(module, dtype=np.float32) -> np.ndarray:
    """A random x: (B, I) for a cell, (T, B, I) for a layer."""
    shape = (BATCH, INPUTS) if is_cell(module) else (STEPS, BATCH, INPUTS)
    return random(np.random.default_rng(0), shape, dtype)


def parts(state) -> list[np.ndarray]:
    """A state as a list: ``[h]`` or ``[h, c]``."""
    return list(state) if isinstance(state, tuple) else [state]


def run(module, x):
    """Forward and backward with all-ones gradients: ``(outputs, d_x)``.

    ``outputs`` lists the arrays forward returned: a layer's output and state, or a cell's state.
    """
    if is_cell(module):
        state, backward = module.forward(x)
        d_state = tuple(np.ones_like(part) for part in parts(state))
        d_x, _ = backward(d_state if is_lstm(module) else d_state[0])
        return parts(state), d_x
    (output, state), backward = module.forward(x)
    d_x, _ = backward(np.ones_like(output))
    return [output, *parts(state)], d_x


def gate_blocks(matrix: np.ndarray) -> list[np.ndarray]:
    """The gate blocks of a (G*H, ...) parameter, HIDDEN rows each."""
    return np.split(matrix, matrix.shape[0] // HIDDEN)


def by_role(module, role: str) -> dict[str, np.ndarray]:
    """The parameters of one role (weight_ih, weight_hh, bias_ih, bias_hh; 'bias' for both
    biases) over every layer and direction."""
    return {name: value for name, value in module.params.items() if name.startswith(role)}


# ---------------------------------------------------------------- batch_first and merge


@over_layers
def test_batch_first_output_and_gradients_are_the_time_major_ones_transposed(cls):
    rng = np.random.default_rng(0)
    time_major = cls(INPUTS, HIDDEN, **STACKED_BIDIRECTIONAL, seed=0)
    batch_first = cls(INPUTS, HIDDEN, **STACKED_BIDIRECTIONAL, batch_first=True, seed=0)
    x, lengths = random(rng, (STEPS, BATCH, INPUTS)), np.array([STEPS, 3])

    (out, state), backward = time_major.forward(x, lengths)
    (out_bf, state_bf), backward_bf = batch_first.forward(x.transpose(1, 0, 2), lengths)
    d_out = random(rng, out.shape)
    d_x, _ = backward(d_out)
    d_x_bf, _ = backward_bf(d_out.transpose(1, 0, 2))

    np.testing.assert_allclose(out_bf, out.transpose(1, 0, 2), rtol=1e-6)
    for part_bf, part in zip(parts(state_bf), parts(state), strict=True):
        np.testing.assert_allclose(part_bf, part, rtol=1e-6)  # states stay (L*D, BATCH, HIDDEN)
    np.testing.assert_allclose(d_x_bf, d_x.transpose(1, 0, 2), rtol=1e-6)
    for name, grad in time_major.grads.items():
        np.testing.assert_allclose(batch_first.grads[name], grad, rtol=1e-5, err_msg=name)


@over_layers
def test_merge_sum_is_the_sum_of_the_concat_halves(cls):
    rng = np.random.default_rng(0)
    concat = cls(INPUTS, HIDDEN, bidirectional=True, seed=0)
    summed = loaded(cls(INPUTS, HIDDEN, bidirectional=True, merge="sum", seed=1), concat)
    x = random(rng, (STEPS, BATCH, INPUTS))

    (out_concat, state_concat), backward_concat = concat.forward(x)
    (out_sum, state_sum), backward_sum = summed.forward(x)
    d_out = random(rng, out_sum.shape)
    d_x_sum, _ = backward_sum(d_out)
    d_x_concat, _ = backward_concat(np.concatenate([d_out, d_out], axis=2))

    assert (out_concat.shape, out_sum.shape) == ((STEPS, BATCH, 2 * HIDDEN), (STEPS, BATCH, HIDDEN))
    np.testing.assert_allclose(
        out_sum, out_concat[..., :HIDDEN] + out_concat[..., HIDDEN:], rtol=1e-6
    )
    for part_sum, part_concat in zip(parts(state_sum), parts(state_concat), strict=True):
        np.testing.assert_array_equal(part_sum, part_concat)
    np.testing.assert_allclose(d_x_sum, d_x_concat, rtol=1e-6)


# ---------------------------------------------------------------- dtype


@over_modules
def test_float64_module_computes_in_float64_and_the_default_is_float32(cls):
    for dtype, module in [(np.float32, build(cls)), (np.float64, build(cls, dtype=np.float64))]:
        outputs, d_x = run(module, input_for(module, dtype))
        arrays = [*outputs, d_x, *module.grads.values(), *module.params.values()]
        assert {array.dtype for array in arrays} == {np.dtype(dtype)}


@over_modules
def test_float64_input_to_a_float32_module_gives_float32(cls):
    module = build(cls)
    outputs, d_x = run(module, input_for(module, np.float64))
    assert {array.dtype for array in [*outputs, d_x]} == {np.dtype(np.float32)}


def test_float64_input_beyond_float32_range_is_refused():
    with pytest.raises(ValueError, match="inf|float32"):
        rnnkit.GRU(INPUTS, HIDDEN)(np.full((STEPS, BATCH, INPUTS), 1e39))


# ---------------------------------------------------------------- seed


@over_modules
def test_seed_makes_construction_reproducible_and_seeds_differ(cls):
    first, same, other = (build(cls, seed=seed).state_dict() for seed in (7, 7, 8))
    for name, value in first.items():
        np.testing.assert_array_equal(same[name], value, err_msg=name)
        assert not np.array_equal(other[name], value), name


# ---------------------------------------------------------------- dropout


@over_layers
def test_inference_ignores_dropout_and_is_deterministic(cls):
    without = cls(INPUTS, HIDDEN, num_layers=2, seed=0)
    with_dropout = loaded(cls(INPUTS, HIDDEN, num_layers=2, dropout=0.5, seed=1), without)
    x = input_for(without)
    expected, _ = without(x)
    for _ in range(2):
        np.testing.assert_array_equal(with_dropout(x)[0], expected)


@over_layers
def test_training_forward_applies_dropout_between_layers(cls):
    layer = cls(INPUTS, HIDDEN, num_layers=2, dropout=0.5, seed=0)
    x = input_for(layer)
    (trained, _), _ = layer.forward(x)
    assert not np.allclose(trained, layer(x)[0])


@over_layers
def test_dropout_masks_follow_the_seed(cls):
    x = random(np.random.default_rng(0), (STEPS, BATCH, INPUTS))
    (first, _), _ = cls(INPUTS, HIDDEN, num_layers=2, dropout=0.5, seed=3).forward(x)
    (again, _), _ = cls(INPUTS, HIDDEN, num_layers=2, dropout=0.5, seed=3).forward(x)
    np.testing.assert_array_equal(again, first)


@over_layers
def test_without_dropout_the_training_forward_equals_inference_exactly(cls):
    layer = cls(INPUTS, HIDDEN, **STACKED_BIDIRECTIONAL, seed=0)
    x = input_for(layer)
    (trained, trained_state), _ = layer.forward(x)
    inferred, inferred_state = layer(x)
    np.testing.assert_array_equal(trained, inferred)
    for trained_part, part in zip(parts(trained_state), parts(inferred_state), strict=True):
        np.testing.assert_array_equal(trained_part, part)


# ---------------------------------------------------------------- init schemes


@over_modules
def test_uniform_init_spans_plus_minus_one_over_sqrt_hidden(cls):
    bound = np.float32(1.0 / np.sqrt(HIDDEN))
    params = cls(100, HIDDEN, init="uniform", seed=0).params  # many inputs: many draws
    for name, value in params.items():
        assert np.abs(value).max() <= bound, name
    values = np.concatenate([value.ravel() for value in params.values()])
    assert values.min() < -0.95 * bound and values.max() > 0.95 * bound  # filling the range


@over_modules
def test_xavier_orthogonal_init_has_orthogonal_recurrent_blocks_and_zero_biases(cls):
    module = build(cls, init="xavier_orthogonal", seed=0)
    for name, weight_hh in by_role(module, "weight_hh").items():
        for block in gate_blocks(weight_hh):
            np.testing.assert_allclose(block @ block.T, np.eye(HIDDEN), atol=1e-5, err_msg=name)
    for name, weight_ih in by_role(module, "weight_ih").items():
        assert np.abs(weight_ih).max() <= np.sqrt(6.0 / (weight_ih.shape[1] + HIDDEN)), name
    for name, bias in by_role(module, "bias").items():
        expected = np.zeros_like(bias)
        if is_lstm(module) and name.startswith("bias_ih"):
            expected[HIDDEN : 2 * HIDDEN] = 1.0  # gates i, f, g, o: the forget gate starts open
        np.testing.assert_array_equal(bias, expected, err_msg=name)


@pytest.mark.parametrize("cls", [rnnkit.RNN, rnnkit.RNNCell], ids=["RNN", "RNNCell"])
def test_identity_init_gives_identity_recurrence_and_zero_biases(cls):
    module = build(cls, init="identity", nonlinearity="relu", seed=0)
    for name, weight_hh in by_role(module, "weight_hh").items():
        np.testing.assert_array_equal(weight_hh, np.eye(HIDDEN), err_msg=name)
    for name, bias in by_role(module, "bias").items():
        assert not bias.any(), name


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU, rnnkit.LSTMCell, rnnkit.GRUCell])
def test_identity_init_is_refused_for_gated_cells(cls):
    with pytest.raises(ValueError, match=r"init='identity' .*Elman RNN.*use 'uniform'"):
        cls(INPUTS, HIDDEN, init="identity")


@pytest.mark.parametrize("init", ["uniform", "xavier_orthogonal"])
@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.LSTMCell])
def test_forget_bias_sets_the_forget_block_of_bias_ih_and_clears_that_of_bias_hh(cls, init):
    plain = build(cls, init=init, seed=0).state_dict()
    module = build(cls, init=init, seed=0, forget_bias=2.0)
    for name, value in module.params.items():
        expected = plain[name]  # everything else as without forget_bias
        if name.startswith("bias"):
            forget = 2.0 if name.startswith("bias_ih") else 0.0
            expected[HIDDEN : 2 * HIDDEN] = forget  # gates i, f, g, o
        np.testing.assert_array_equal(value, expected, err_msg=name)


@pytest.mark.parametrize("cls", [rnnkit.GRU, rnnkit.RNN, rnnkit.GRUCell, rnnkit.RNNCell])
def test_forget_bias_is_refused_without_a_forget_gate(cls):
    with pytest.raises(ValueError, match=f"{cls.__name__}: forget_bias is for LSTM"):
        cls(INPUTS, HIDDEN, forget_bias=1.0)


# ---------------------------------------------------------------- constructor checks

BAD_CONSTRUCTIONS = {
    "hidden_size=0": (
        lambda: rnnkit.GRU(INPUTS, 0),
        ValueError,
        "GRU: hidden_size must be at least 1, got 0",
    ),
    "cell hidden_size=0": (
        lambda: rnnkit.LSTMCell(INPUTS, 0),
        ValueError,
        "LSTMCell: hidden_size must be at least 1",
    ),
    "hidden_size=2.5": (
        lambda: rnnkit.RNN(INPUTS, 2.5),
        TypeError,
        "RNN: hidden_size must be an int, got float",
    ),
    "num_layers=0": (
        lambda: rnnkit.LSTM(INPUTS, HIDDEN, num_layers=0),
        ValueError,
        "num_layers must be at least 1",
    ),
    "dropout=1.5": (  # 1 is allowed, as in PyTorch: every unit dropped
        lambda: rnnkit.GRU(INPUTS, HIDDEN, 2, dropout=1.5),
        ValueError,
        r"dropout must be in \[0, 1\], got 1.5",
    ),
    "dropout=-0.1": (
        lambda: rnnkit.GRU(INPUTS, HIDDEN, 2, dropout=-0.1),
        ValueError,
        r"dropout must be in \[0, 1\]",
    ),
    "merge='avg'": (
        lambda: rnnkit.LSTM(INPUTS, HIDDEN, bidirectional=True, merge="avg"),
        ValueError,
        r"merge='avg' is not one of \['concat', 'sum'\]",
    ),
    "nonlinearity='sigmoid'": (
        lambda: rnnkit.RNN(INPUTS, HIDDEN, nonlinearity="sigmoid"),
        ValueError,
        r"nonlinearity='sigmoid' is not one of \['tanh', 'relu'\]",
    ),
    "cell nonlinearity='sigmoid'": (
        lambda: rnnkit.RNNCell(INPUTS, HIDDEN, nonlinearity="sigmoid"),
        ValueError,
        r"RNNCell: nonlinearity='sigmoid' is not one of",
    ),
    "proj_size=hidden_size": (
        lambda: rnnkit.LSTM(INPUTS, HIDDEN, proj_size=HIDDEN),
        ValueError,
        rf"LSTM: proj_size must be in \[0, hidden_size={HIDDEN}\) \(0: no projection\), got 3",
    ),
    "proj_size=1.5": (
        lambda: rnnkit.LSTM(INPUTS, HIDDEN, proj_size=1.5),
        TypeError,
        "LSTM: proj_size must be an int, got 1.5",
    ),
    "cell proj_size": (  # as torch.nn.LSTMCell
        lambda: rnnkit.LSTMCell(INPUTS, HIDDEN, proj_size=2),
        ValueError,
        "LSTMCell has no proj_size",
    ),
    "dtype=int32": (
        lambda: rnnkit.GRU(INPUTS, HIDDEN, dtype=np.int32),
        ValueError,
        "dtype must be float32 or float64, got int32",
    ),
    "cell dtype=float16": (
        lambda: rnnkit.GRUCell(INPUTS, HIDDEN, dtype=np.float16),
        ValueError,
        "dtype must be float32 or float64, got float16",
    ),
    "init='bogus'": (
        lambda: rnnkit.LSTM(INPUTS, HIDDEN, init="bogus"),
        ValueError,
        r"init='bogus' is not a known scheme; use one of \['uniform'",
    ),
    "cell init='bogus'": (
        lambda: rnnkit.GRUCell(INPUTS, HIDDEN, init="bogus"),
        ValueError,
        "init='bogus' is not a known scheme",
    ),
    "forget_bias=nan": (
        lambda: rnnkit.LSTM(INPUTS, HIDDEN, forget_bias=float("nan")),
        ValueError,
        "forget_bias must be a finite number",
    ),
    "forget_bias with bias=False": (
        lambda: rnnkit.LSTM(INPUTS, HIDDEN, bias=False, forget_bias=2.0),
        ValueError,
        "forget_bias needs bias=True",
    ),
    "dropout='0.5'": (
        lambda: rnnkit.GRU(INPUTS, HIDDEN, 2, dropout="0.5"),
        TypeError,
        "dropout must be a number",
    ),
    "bias='no'": (lambda: rnnkit.GRU(INPUTS, HIDDEN, bias="no"), TypeError, "bias must be True"),
    "seed='a'": (lambda: rnnkit.RNNCell(INPUTS, HIDDEN, seed="a"), TypeError, "seed must be"),
}


@pytest.mark.parametrize(
    ("construct", "error", "match"),
    [pytest.param(*case, id=name) for name, case in BAD_CONSTRUCTIONS.items()],
)
def test_bad_constructor_arguments_are_refused_with_a_one_line_message(construct, error, match):
    with pytest.raises(error, match=match) as caught:
        construct()
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- load_state_dict


def stacked_lstm(seed: int = 0) -> rnnkit.LSTM:
    return rnnkit.LSTM(INPUTS, HIDDEN, **STACKED_BIDIRECTIONAL, seed=seed)


def broken_state_dict(fault: str) -> tuple[str, dict]:
    """The key the error must name, and a state_dict with ``fault`` at that key."""
    state = stacked_lstm().state_dict()
    if fault == "missing key":
        del state["bias_hh_l1_reverse"]
        return "bias_hh_l1_reverse", state
    if fault == "unexpected key":
        state["weight_hr_l0"] = np.zeros((HIDDEN, HIDDEN))  # an LSTM with proj_size has it
        return "weight_hr_l0", state
    if fault == "wrong shape":
        state["weight_hh_l1"] = state["weight_hh_l1"].T
        return "weight_hh_l1", state
    if fault == "NaN value":
        state["weight_ih_l0_reverse"][0, 0] = np.nan
        return "weight_ih_l0_reverse", state
    state["bias_ih_l0"][-1] = np.inf  # "inf value"
    return "bias_ih_l0", state


@pytest.mark.parametrize(
    "fault", ["missing key", "unexpected key", "wrong shape", "NaN value", "inf value"]
)
def test_load_state_dict_refuses_a_broken_state_dict_naming_the_key_and_loads_nothing(fault):
    key, broken = broken_state_dict(fault)
    layer = stacked_lstm(seed=1)
    before = layer.state_dict()
    with pytest.raises(ValueError, match=f"'{key}'") as caught:
        layer.load_state_dict(broken)
    assert "\n" not in str(caught.value)
    for name, value in layer.params.items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_load_state_dict_accepts_torch_tensors():
    torch = pytest.importorskip("torch", reason="torch is needed to make torch tensors")

    source = torch.nn.LSTM(INPUTS, HIDDEN, **STACKED_BIDIRECTIONAL)
    layer = rnnkit.LSTM(INPUTS, HIDDEN, **STACKED_BIDIRECTIONAL, dtype=np.float64)
    layer.load_state_dict(source.state_dict())  # torch's own keys, float32 tensors
    for name, tensor in source.state_dict().items():
        np.testing.assert_allclose(layer.params[name], tensor.numpy(), err_msg=name)
        assert layer.params[name].dtype == np.float64, name

    weights = stacked_lstm().state_dict()
    layer = stacked_lstm(seed=1)
    layer.load_state_dict({k: torch.tensor(v, requires_grad=True) for k, v in weights.items()})
    for name, value in weights.items():
        np.testing.assert_array_equal(layer.params[name], value, err_msg=name)


@over_layers
def test_training_output_is_read_only_so_backward_cannot_be_corrupted(cls):
    layer = build(cls)
    x = np.ones((STEPS, BATCH, INPUTS), dtype=np.float32)
    (output, _), _ = layer.forward(x)
    with pytest.raises(ValueError, match="read-only"):
        output *= 0.5
    inference_output, _ = layer(x)
    inference_output *= 0.5  # nothing is kept on the inference path, so editing is fine
