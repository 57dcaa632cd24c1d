"""Every public layer and cell through its whole life, driven by one table (MODULES):

construct -> forward -> backward (gradient shapes, parameter gradients that accumulate and
reset) -> state_dict round trip -> the errors that bad input must raise.

A new layer or cell is one new row of MODULES.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pytest

import rnnkit

STEPS, BATCH, INPUTS, HIDDEN = 5, 2, 4, 3  # all different, so a swapped axis shows


@dataclass(frozen=True)
class Spec:
    """How to build one module (``build(seed=...)``), and the form of its calls.

    ``cell``: one step at a time, ``cell(x, state) -> state`` with x (B, I).
    Otherwise a layer: ``layer(x, lengths, state) -> (output, state)`` with x (T, B, I).
    ``lstm``: the state is the pair ``(h, c)`` rather than ``h``.
    """

    build: Callable[..., rnnkit.Module]
    cell: bool = False
    lstm: bool = False

    def input(self, rng) -> np.ndarray:
        shape = (BATCH, INPUTS) if self.cell else (STEPS, BATCH, INPUTS)
        return rng.standard_normal(shape).astype(np.float32)

    def state(self, module, rng):
        """A random initial state: ``h`` or ``(h, c)``."""
        stack = () if self.cell else (module.num_layers * module.directions,)
        shape = (*stack, BATCH, HIDDEN)
        h = rng.standard_normal(shape).astype(np.float32)
        return (h, rng.standard_normal(shape).astype(np.float32)) if self.lstm else h

    def infer(self, module, x, state=None, lengths=None):
        """Inference: a layer's ``(output, state)``, a cell's new state."""
        return module(x, state) if self.cell else module(x, lengths=lengths, state=state)

    def train(self, module, x, state=None):
        """The training path: ``(what infer returns, backward)``."""
        return module.forward(x, state) if self.cell else module.forward(x, state=state)

    def backward(self, backward, d_outputs):
        """Call ``backward`` with the gradient of everything ``train`` returned."""
        return backward(d_outputs) if self.cell else backward(*d_outputs)


RNN_ = partial(rnnkit.RNN, INPUTS, HIDDEN)
LSTM_ = partial(rnnkit.LSTM, INPUTS, HIDDEN)
GRU_ = partial(rnnkit.GRU, INPUTS, HIDDEN)
STACKED_BIDIRECTIONAL = {"num_layers": 2, "bidirectional": True}

MODULES = {
    "RNN-tanh": Spec(RNN_),
    "RNN-relu": Spec(partial(RNN_, nonlinearity="relu")),
    "RNN-tanh-stacked-bidirectional": Spec(partial(RNN_, **STACKED_BIDIRECTIONAL)),
    "RNN-relu-stacked-bidirectional": Spec(
        partial(RNN_, nonlinearity="relu", **STACKED_BIDIRECTIONAL)
    ),
    "LSTM": Spec(LSTM_, lstm=True),
    "LSTM-stacked-bidirectional": Spec(partial(LSTM_, **STACKED_BIDIRECTIONAL), lstm=True),
    "GRU": Spec(GRU_),
    "GRU-stacked-bidirectional": Spec(partial(GRU_, **STACKED_BIDIRECTIONAL)),
    "RNNCell": Spec(partial(rnnkit.RNNCell, INPUTS, HIDDEN), cell=True),
    "LSTMCell": Spec(partial(rnnkit.LSTMCell, INPUTS, HIDDEN), cell=True, lstm=True),
    "GRUCell": Spec(partial(rnnkit.GRUCell, INPUTS, HIDDEN), cell=True),
}


# Arrays and (h, c) pairs, nested in tuples: small helpers to treat them alike.
def tree_map(function, tree):
    if isinstance(tree, tuple):
        return tuple(tree_map(function, part) for part in tree)
    return function(tree)


def leaves(tree) -> list[np.ndarray]:
    return [leaf for part in tree for leaf in leaves(part)] if isinstance(tree, tuple) else [tree]


def assert_trees_equal(actual, expected) -> None:
    for a, e in zip(leaves(actual), leaves(expected), strict=True):
        np.testing.assert_array_equal(a, e)


def with_last(x: np.ndarray, value: float) -> np.ndarray:
    """A copy of ``x`` whose last entry is ``value``."""
    x = x.copy()
    x.flat[-1] = value
    return x


@dataclass(frozen=True)
class BadInput:
    """A call that must raise ``error`` with a one-line message matching ``match``."""

    name: str
    call: Callable[[], object]
    error: type[Exception]
    match: str


def bad_inputs(spec: Spec, module, x, state) -> list[BadInput]:
    """The bad inputs every module must refuse, built from a good ``x`` and ``state``."""
    integer_x = np.ones(x.shape, dtype=np.int64)
    wrong_kind = state[0] if spec.lstm else (state, state)  # LSTM: h alone; others: a pair
    last_part_batch_of_1 = state[-1][..., :1, :] if spec.lstm else state[..., :1, :]
    other_batch_state = (state[0], last_part_batch_of_1) if spec.lstm else last_part_batch_of_1

    def backward_too_narrow():
        outputs, backward = spec.train(module, x)
        return spec.backward(backward, tree_map(lambda a: a[..., :-1], outputs))

    cases = [
        BadInput(
            "x without its batch axis",
            lambda: spec.infer(module, x[0] if spec.cell else x[:, 0]),
            ValueError,
            "add a batch axis",
        ),
        BadInput(
            "x with the wrong feature count",
            lambda: spec.infer(module, x[..., :-1]),
            ValueError,
            f"input_size={INPUTS}",
        ),
        BadInput(
            "state from a batch of another size",
            lambda: spec.infer(module, x, other_batch_state),
            ValueError,
            r"state.* must have shape",
        ),
        BadInput(
            "state of the wrong kind",
            lambda: spec.infer(module, x, wrong_kind),
            TypeError,
            r"tuple \(h, c\)" if spec.lstm else "one array h",
        ),
        BadInput("NaN in x", lambda: spec.infer(module, with_last(x, np.nan)), ValueError, "NaN"),
        BadInput("inf in x", lambda: spec.infer(module, with_last(x, -np.inf)), ValueError, "inf"),
        BadInput("integer x", lambda: spec.infer(module, integer_x), TypeError, "floating-point"),
        BadInput(
            "empty batch",
            lambda: spec.infer(module, x[:0] if spec.cell else x[:, :0]),
            ValueError,
            "empty",
        ),
        BadInput("gradient of the wrong shape", backward_too_narrow, ValueError, "must have shape"),
    ]
    if not spec.cell:
        lengths = np.full(BATCH, STEPS)
        cases += [
            BadInput(
                "a length of 0",
                lambda: spec.infer(module, x, lengths=np.r_[0, lengths[1:]]),
                ValueError,
                rf"lengths must lie in \[1, {STEPS}\]",
            ),
            BadInput(
                "a length past T",
                lambda: spec.infer(module, x, lengths=np.r_[STEPS + 1, lengths[1:]]),
                ValueError,
                rf"lengths must lie in \[1, {STEPS}\]",
            ),
            BadInput(
                "one length too many",
                lambda: spec.infer(module, x, lengths=np.append(lengths, 1)),
                ValueError,
                "one length per sequence",
            ),
            BadInput(
                "float lengths",
                lambda: spec.infer(module, x, lengths=lengths.astype(np.float64)),
                TypeError,
                "integer step counts",
            ),
        ]
    return cases


def check_refused(case: BadInput) -> None:
    """Fail, naming the case, unless it raises the expected one-line error."""
    try:
        with pytest.raises(case.error, match=case.match) as caught:
            case.call()
        assert "\n" not in str(caught.value), "the message spans several lines"
    except (Exception, pytest.fail.Exception) as failure:
        pytest.fail(f"bad input {case.name!r}: {type(failure).__name__}: {failure}")


@pytest.mark.parametrize("spec", MODULES.values(), ids=MODULES.keys())
def test_module_lifecycle(spec: Spec) -> None:
    rng = np.random.default_rng(0)
    module = spec.build(seed=1)
    x, state0 = spec.input(rng), spec.state(module, rng)

    # forward -> backward: every gradient has the shape of what it differentiates
    outputs, backward = spec.train(module, x, state0)
    d_outputs = tree_map(lambda a: rng.standard_normal(a.shape).astype(a.dtype), outputs)
    d_x, d_state0 = spec.backward(backward, d_outputs)
    assert d_x.shape == x.shape
    assert tree_map(np.shape, d_state0) == tree_map(np.shape, state0)
    with pytest.raises(RuntimeError, match="already called"):
        spec.backward(backward, d_outputs)

    # parameter gradients: one per parameter, nonzero, accumulating, reset by zero_grad
    first = {name: grad.copy() for name, grad in module.grads.items()}
    assert first.keys() == module.state_dict().keys()
    assert [name for name, grad in first.items() if not grad.any()] == []
    spec.backward(spec.train(module, x, state0)[1], d_outputs)
    for name, grad in module.grads.items():
        np.testing.assert_allclose(grad, 2 * first[name], rtol=1e-6, err_msg=name)
    module.zero_grad()
    assert [name for name, grad in module.grads.items() if grad.any()] == []

    # state_dict round trip: another seed computes something else until it loads the weights
    expected = spec.infer(module, x, state0)
    weights = module.state_dict()
    other = spec.build(seed=2)
    assert not np.array_equal(leaves(spec.infer(other, x, state0))[0], leaves(expected)[0])
    other.load_state_dict(weights)
    assert_trees_equal(spec.infer(other, x, state0), expected)
    for value in weights.values():  # the state_dict is a copy: editing it changes nothing
        value += 1.0
    assert_trees_equal(spec.infer(module, x, state0), expected)

    # bad input: each raises the right error with a one-line message
    for case in bad_inputs(spec, module, x, state0):
        check_refused(case)
