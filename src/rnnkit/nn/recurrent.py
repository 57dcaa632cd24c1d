"""Recurrent layers over whole sequences: RNN, LSTM and GRU, stacked and bidirectional.

Constructor arguments, parameter names, shapes, gate order and state layout are PyTorch's, so
weights copy both ways without reshuffling. Inputs are time-major (T, B, I) unless
``batch_first``; states are (num_layers * num_directions, B, H), ``h`` or ``(h, c)`` for LSTM.

Ragged batches: right-padded input plus ``lengths`` (B,), in any order. Outputs past a sequence's
length are zero, its final state is the state at its last valid step, and the reverse direction
runs over each sequence within its own length (PyTorch's packed-sequence semantics).
"""

from __future__ import annotations

import warnings

import numpy as np

from rnnkit._memory import check_fits
from rnnkit.backends.compiled import _fused
from rnnkit.kernels import gru, lstm, rnn
from rnnkit.nn import _checks
from rnnkit.nn._direction import forward_direction, infer_direction
from rnnkit.nn.init import check_scheme, initial_weights, weight_count
from rnnkit.nn.module import Module, amount, reserve, single_use

ROLES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
MERGES = ("concat", "sum")


def reverse_in_time(a: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """Reverse each sequence of a (T, B, F) array within its own length.

    ``order`` is (T, B) from ``reversal_order`` (None when all sequences have T steps). Padding
    stays where it is. Applying this twice gives back ``a``.
    """
    if order is None:
        return a[::-1]
    return a[order, np.arange(a.shape[1])]  # (T, B, F)


def reversal_order(lengths: np.ndarray | None, steps: int) -> np.ndarray | None:
    """(T, B) source step of each step when reversed within length: L-1-t before L, t after."""
    if lengths is None:
        return None
    t = np.arange(steps)[:, None]  # (T, 1)
    return np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)  # (T, B)


class _Recurrent(Module):
    """Shared machinery of RNN, LSTM and GRU; subclasses set the kernel and its gate count."""

    _kernel = rnn
    _gates = 1
    _state_parts = 1
    # None, or a list set by ``rnnkit.diagnostics.recording_hidden_gradients``: each backward then
    # appends dL/dh[t] of every layer and direction, (num_layers * num_directions, T, B, H),
    # time-major, indexed as the state stack; the reverse direction's entry at t is the gradient
    # of its state at input step t (its own time order undone). An output sink, not a cache.
    dh_records: list | None = None

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        merge: str = "concat",
        init: str = "uniform",
        dtype=np.float32,
        seed: int | None = None,
        forget_bias: float | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        _checks.sizes(name, input_size=input_size, hidden_size=hidden_size, num_layers=num_layers)
        _checks.flags(name, bias=bias, batch_first=batch_first, bidirectional=bidirectional)
        _checks.probability(name, dropout=dropout)
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"{name}: dropout acts between layers, so with num_layers=1 it does nothing",
                stacklevel=3,
            )
        _checks.choice(name, "merge", merge, MERGES)
        check_scheme(init, name)
        _checks.forget_bias(name, forget_bias, self._gates, bias)
        dtype = _checks.float_dtype(name, dtype)
        directions = 2 if bidirectional else 1
        outputs = hidden_size * (directions if merge == "concat" else 1)  # a layer's output size
        count = directions * (
            weight_count(input_size, hidden_size, self._gates, bias)
            + (num_layers - 1) * weight_count(outputs, hidden_size, self._gates, bias)
        )
        sizes = f"{amount(input_size)}, {amount(hidden_size)}, num_layers={amount(num_layers)}"
        reserve(count, dtype, f"{name}({sizes})")
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.merge = merge
        self.init = init
        self.forget_bias = forget_bias
        self.rng = _checks.generator(name, seed)
        self.directions = directions
        for layer in range(self.num_layers):
            inputs = self.input_size if layer == 0 else self.output_size
            for direction in range(self.directions):
                weights = initial_weights(
                    init, inputs, hidden_size, self._gates, bias, self.rng, dtype, forget_bias
                )
                for role, value in weights.items():
                    self._add_param(self._param_name(role, layer, direction), value)

    def config(self) -> dict:
        config = {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bias": self.bias,
            "batch_first": self.batch_first,
            "dropout": self.dropout,
            "bidirectional": self.bidirectional,
            "merge": self.merge,
            "init": self.init,
            "dtype": self.dtype.name,
        }
        if self.forget_bias is not None:
            config["forget_bias"] = self.forget_bias
        return config

    @property
    def output_size(self) -> int:
        """Features of the output: H * num_directions with merge='concat', else H."""
        return self.hidden_size * (self.directions if self.merge == "concat" else 1)

    @staticmethod
    def _param_name(role: str, layer: int, direction: int) -> str:
        return f"{role}_l{layer}" + ("_reverse" if direction else "")

    def _weights(self, layer: int, direction: int) -> dict[str, np.ndarray]:
        names = {role: self._param_name(role, layer, direction) for role in ROLES}
        return {role: self.params[name] for role, name in names.items() if name in self.params}

    def _kernel_options(self) -> dict:
        return {}

    def __call__(self, x, lengths=None, state=None):
        """Inference: ``(output, state)``; no dropout, nothing kept for backward."""
        result, _ = self._run(x, lengths, state, training=False)
        return result

    def forward(self, x, lengths=None, state=None):
        """Training path: ``((output, state), backward)``.

        Args:
            x: (T, B, input_size), or (B, T, input_size) when ``batch_first``.
            lengths: (B,) ints in [1, T], or None when every sequence has T steps.
            state: ``h`` (or ``(h, c)`` for LSTM), each (num_layers * num_directions, B, H);
                None means zeros.
        Returns:
            output: (T, B, output_size) (batch first if ``batch_first``), zero past each length;
            state: the final state, taken at each sequence's last valid step;
            backward(d_output, d_state=None) -> (d_x, d_state0): gradients with respect to x
                and the initial state; parameter gradients accumulate in ``self.grads``.
        """
        return self._run(x, lengths, state, training=True)

    def _run(self, x, lengths, state, training: bool):
        dtype = self.dtype
        x = _checks.sequence_batch(x, self.input_size, dtype, self.batch_first)  # (T, B, I)
        steps, batch, _ = x.shape
        lengths = _checks.sequence_lengths(lengths, batch, steps)
        self._check_memory(steps, batch, training)
        stack_shape = (self.num_layers * self.directions, batch, self.hidden_size)
        state0 = _checks.state_parts(
            state, self._state_parts, stack_shape, dtype, "state", "(num_layers*directions, B, H)"
        )
        order = reversal_order(lengths, steps)
        final = tuple(np.empty(stack_shape, dtype=dtype) for _ in state0)
        layer_input = x
        layer_backwards = []  # per layer: (dropout mask or None, [backward per direction])
        for layer in range(self.num_layers):
            mask = None
            if training and self.dropout > 0.0 and layer > 0:
                keep = self.rng.random(layer_input.shape) >= self.dropout
                mask = (keep / (1.0 - self.dropout)).astype(dtype)  # (T, B, F)
                layer_input = layer_input * mask
            args = (layer, layer_input, state0, final, lengths, order, training)
            outputs, backwards = zip(*self._each_direction(self._run_direction, args), strict=True)
            layer_input = self._merge(outputs)
            layer_backwards.append((mask, backwards))
        output = layer_input.transpose(1, 0, 2) if self.batch_first else layer_input
        result = (output, _checks.public_state(final))
        if not training:
            return result, None
        output.flags.writeable = False  # backward reads it: editing it would corrupt gradients

        def backward(d_output, d_state=None):
            return self._backward(
                d_output, d_state, layer_backwards, order, output.shape, stack_shape
            )

        return result, single_use(backward)

    def _check_memory(self, steps: int, batch: int, training: bool) -> None:
        """UserError before a run whose arrays cannot fit in memory (an estimate: per layer and
        direction the input projection, the gates and the states, (T, B, ~2G+4 H) for training,
        which keeps them all for backward; inference holds one layer's at a time)."""
        per_layer = steps * batch * self.hidden_size * (2 * self._gates + 4) * self.directions
        layers = self.num_layers if training else 1
        check_fits(
            per_layer * layers * self.dtype.itemsize,
            f"{type(self).__name__} over {steps} steps of {batch} sequences with hidden size "
            f"{self.hidden_size}",
            "use shorter sequences, fewer sequences at a time or a smaller hidden size",
        )

    def _each_direction(self, run, args: tuple) -> list:
        """``[run(0, *args)]``, or ``[run(0, *args), run(1, *args)]`` for a bidirectional layer,
        side by side when the compiled loops run (``_fused.run_together``): the two directions
        are independent."""
        if self.directions == 1:
            return [run(0, *args)]
        return list(_fused.run_together(lambda: run(0, *args), lambda: run(1, *args), self.dtype))

    def _run_direction(
        self, direction, layer, layer_input, state0, final, lengths, order, training
    ):
        """One direction of one layer, forward: its output in time order and its backward (None
        for inference); writes its final state into ``final``."""
        index = layer * self.directions + direction
        inputs = layer_input if direction == 0 else reverse_in_time(layer_input, order)
        args = (
            self._kernel,
            inputs,
            self._weights(layer, direction),
            tuple(part[index] for part in state0),
            lengths,
        )
        if training:
            y, state_n, backward = forward_direction(*args, **self._kernel_options())
        else:
            (y, state_n), backward = infer_direction(*args, **self._kernel_options()), None
        for part, value in zip(final, state_n, strict=True):
            part[index] = value
        return (y if direction == 0 else reverse_in_time(y, order)), backward

    def _backward_direction(
        self, direction, layer, backwards, d_layer_output, d_final, d_state0, record, order
    ):
        """One direction of one layer, backward: ``(dx, grads)``, dx in time order; writes its
        gradients at the initial state into ``d_state0`` and its dL/dh into ``record``."""
        index = layer * self.directions + direction
        hidden = self.hidden_size
        dy = d_layer_output
        if self.directions == 2 and self.merge == "concat":
            dy = dy[:, :, direction * hidden : (direction + 1) * hidden]  # (T, B, H)
        if direction == 1:
            dy = reverse_in_time(dy, order)
        dh_record = None if record is None else record[index]  # (T, B, H)
        d_final_here = tuple(part[index] for part in d_final)
        dx, dstate0, grads = backwards[direction](dy, d_final_here, dh_record)
        if direction == 1:
            dx = reverse_in_time(dx, order)
            if record is not None:
                record[index] = reverse_in_time(record[index], order)
        for part, value in zip(d_state0, dstate0, strict=True):
            part[index] = value
        return dx, grads

    def _merge(self, outputs: list[np.ndarray]) -> np.ndarray:
        if len(outputs) == 1:
            return outputs[0]
        if self.merge == "sum":
            return outputs[0] + outputs[1]
        return np.concatenate(outputs, axis=2)  # (T, B, 2H)

    def _backward(self, d_output, d_state, layer_backwards, order, output_shape, stack_shape):
        dtype = self.dtype
        d_output = _checks.float_array(d_output, "d_output", dtype)
        _checks.check_shape(
            d_output, output_shape, "d_output", "the output's shape", "pass d(loss)/d(output)"
        )
        if self.batch_first:
            d_output = d_output.transpose(1, 0, 2)  # (B, T, F) -> (T, B, F)
        d_final = _checks.state_parts(
            d_state, self._state_parts, stack_shape, dtype, "d_state", "the state's shape"
        )
        d_state0 = tuple(np.empty(stack_shape, dtype=dtype) for _ in d_final)
        hidden = self.hidden_size
        record = None
        if self.dh_records is not None:
            steps, batch = d_output.shape[:2]
            record = np.zeros((stack_shape[0], steps, batch, hidden), dtype)  # (L*D, T, B, H)
        d_layer_output = d_output
        for layer in reversed(range(self.num_layers)):
            mask, backwards = layer_backwards[layer]
            args = (layer, backwards, d_layer_output, d_final, d_state0, record, order)
            results = self._each_direction(self._backward_direction, args)
            d_layer_input = None
            for direction, (dx, grads) in enumerate(results):
                d_layer_input = dx if d_layer_input is None else d_layer_input + dx
                for role, grad in grads.items():
                    self.grads[self._param_name(role, layer, direction)] += grad
            d_layer_output = d_layer_input if mask is None else d_layer_input * mask
        if record is not None:
            self.dh_records.append(record)
        d_x = d_layer_output.transpose(1, 0, 2) if self.batch_first else d_layer_output
        return d_x, _checks.public_state(d_state0)

    def __repr__(self) -> str:
        options = f"num_layers={self.num_layers}, bidirectional={self.bidirectional}"
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size}, {options})"


class RNN(_Recurrent):
    """Elman RNN: h[t] = f(W_ih x[t] + b_ih + W_hh h[t-1] + b_hh), f = tanh or relu.

    Arguments as ``torch.nn.RNN`` plus ``merge`` ('concat' or 'sum' of the two directions),
    ``init`` ('uniform', 'xavier_orthogonal' or 'identity'), ``dtype`` and ``seed``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        **options,
    ) -> None:
        _checks.choice("RNN", "nonlinearity", nonlinearity, rnn.NONLINEARITIES)
        self.nonlinearity = nonlinearity
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            **options,
        )  # fmt: skip

    def _kernel_options(self) -> dict:
        return {"nonlinearity": self.nonlinearity}

    def config(self) -> dict:
        return {**super().config(), "nonlinearity": self.nonlinearity}


class LSTM(_Recurrent):
    """LSTM with PyTorch's gates i, f, g, o: c = f*c + i*g, h = o*tanh(c).

    Arguments as ``torch.nn.LSTM`` (without ``proj_size``) plus ``merge``, ``init``, ``dtype``,
    ``seed`` and ``forget_bias`` (sets the forget gate's bias; 'xavier_orthogonal' uses 1.0).
    The state is the tuple ``(h, c)``.
    """

    _kernel = lstm
    _gates = 4
    _state_parts = 2


class GRU(_Recurrent):
    """GRU with PyTorch's gates r, z, n: n = tanh(W_in x + b_in + r*(W_hn h + b_hn)),
    h = (1-z)*n + z*h.

    Arguments as ``torch.nn.GRU`` plus ``merge``, ``init``, ``dtype`` and ``seed``.
    """

    _kernel = gru
    _gates = 3
