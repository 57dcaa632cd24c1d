"""Recurrent layers over whole sequences, for any registered cell: ``Recurrent``, and RNN, LSTM
and GRU with PyTorch's signatures; stacked and bidirectional.

Constructor arguments, parameter names, shapes, gate order and state layout are PyTorch's, so
weights copy both ways without reshuffling. Inputs are time-major (T, B, I) unless
``batch_first``; states are (num_layers * num_directions, B, S) per part: ``h`` for a cell with
one part, the tuple of parts otherwise (``(h, c)`` for LSTM).

Ragged batches: right-padded input plus ``lengths`` (B,), in any order. Outputs past a sequence's
length are zero, its final state is the state at its last valid step, and the reverse direction
runs over each sequence within its own length (PyTorch's packed-sequence semantics). A PyTorch
``PackedSequence`` may be given as ``x`` instead; the output is then padded, not packed.
"""

from __future__ import annotations

import warnings

import numpy as np

from rnnkit import backends, cells
from rnnkit._memory import check_fits
from rnnkit.backends import check_backend
from rnnkit.nn import _checks, padding
from rnnkit.nn.dropout import inverted_mask
from rnnkit.nn.init import check_scheme, initial_weights, weight_count
from rnnkit.nn.module import Module, amount, reserve, single_use

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


class Recurrent(Module):
    """Any registered cell (``rnnkit.cells``) over whole sequences: stacked, bidirectional,
    ragged. ``RNN``, ``LSTM`` and ``GRU`` are this class with PyTorch's signatures.

    Args:
        cell: a registered cell's name ('rnn', 'lstm', 'gru', ...: ``rnnkit.cells.names()``).
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional: as
            ``torch.nn.RNN``'s.
        merge: 'concat' (PyTorch's) or 'sum' of the two directions' outputs.
        init: 'uniform' (PyTorch's), 'xavier_orthogonal' or 'identity' (``rnnkit.nn.init``).
        dtype: float32 (default) or float64. seed: for the weights and dropout.
        forget_bias: the forget gate's bias, for cells with one (LSTM).
        backend: 'auto', 'numpy' or 'compiled' (``rnnkit.backends``); None, the default, is
            the process-wide default. Not saved with the model: a runtime choice.
        **cell_options: the cell's own options (the RNN's ``nonlinearity`` ...).
    """

    # None, or a list set by ``rnnkit.diagnostics.recording_hidden_gradients``: each backward then
    # appends dL/dh[t] of every layer and direction, (num_layers * num_directions, T, B, S),
    # time-major, indexed as the state stack; the reverse direction's entry at t is the gradient
    # of its state at input step t (its own time order undone). An output sink, not a cache.
    dh_records: list | None = None

    def __init__(
        self,
        cell: str,
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
        backend: str | None = None,
        **cell_options,
    ) -> None:
        super().__init__()
        self.cell = cells.get(cell)
        name = self._name
        _checks.sizes(name, input_size=input_size, hidden_size=hidden_size, num_layers=num_layers)
        _checks.flags(name, bias=bias, batch_first=batch_first, bidirectional=bidirectional)
        self.dropout = dropout  # checked by the setter
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"{name}: dropout acts between layers, so with num_layers=1 it does nothing",
                stacklevel=3,
            )
        _checks.choice(name, "merge", merge, MERGES)
        check_scheme(init, name, self.cell)
        _checks.forget_bias(name, forget_bias, self.cell, bias)
        check_backend(name, backend)
        self.cell_options = self.cell.resolved_options(name, cell_options, hidden_size)
        dtype = _checks.float_dtype(name, dtype)
        self.directions = 2 if bidirectional else 1
        self.state_sizes = self.cell.sizes(hidden_size, self.cell_options)
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.merge = merge
        self.init = init
        self.forget_bias = forget_bias
        self.backend = backend
        first = self.cell.parameters(self.input_size, hidden_size, self.cell_options)
        later = self.cell.parameters(self.output_size, hidden_size, self.cell_options)
        count = weight_count(first, bias) + (num_layers - 1) * weight_count(later, bias)
        sizes = f"{amount(input_size)}, {amount(hidden_size)}, num_layers={amount(num_layers)}"
        reserve(count * self.directions, dtype, f"{name}({sizes})")
        self.rng = _checks.generator(name, seed)
        for layer in range(self.num_layers):
            layer_shapes = first if layer == 0 else later
            for direction in range(self.directions):
                weights = initial_weights(
                    init, layer_shapes, self.cell, hidden_size, bias, self.rng, dtype, forget_bias
                )
                for role, value in weights.items():
                    self._add_param(self._param_name(role, layer, direction), value)
        self.roles = tuple(weights)  # the roles of each layer and direction's arrays
        if backend is not None:
            self.backend_choice()  # a back end asked for and unable to run: refused now

    @property
    def dropout(self) -> float:
        """The probability, in [0, 1], of zeroing each input unit of layers 2.. in training; 1
        zeros them all (as in PyTorch). Checked on assignment, as ``torch.nn.RNN.dropout`` may be
        changed after construction."""
        return self._dropout

    @dropout.setter
    def dropout(self, value: float) -> None:
        _checks.probability(self._name, dropout=value)
        self._dropout = float(value)

    def config(self) -> dict:
        config = {"cell": self.cell.name} if type(self) is Recurrent else {}
        config |= {
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
            **self.cell.config_options(self.cell_options),
        }
        if self.forget_bias is not None:
            config["forget_bias"] = self.forget_bias
        return config

    @property
    def output_size(self) -> int:
        """Features of the output: S * num_directions with merge='concat', else S (S = H, or
        the cell's output width)."""
        return self.state_sizes[0] * (self.directions if self.merge == "concat" else 1)

    @staticmethod
    def _param_name(role: str, layer: int, direction: int) -> str:
        return f"{role}_l{layer}" + ("_reverse" if direction else "")

    def _weights(self, layer: int, direction: int) -> dict[str, np.ndarray]:
        """This layer and direction's arrays by role (``weight_ih`` ...)."""
        return {role: self.params[self._param_name(role, layer, direction)] for role in self.roles}

    @property
    def _name(self) -> str:
        """The layer's name in messages: its class's, or its cell's PyTorch name ('LSTM')."""
        if type(self) is not Recurrent:
            return type(self).__name__
        return self.cell.torch_name or f"Recurrent({self.cell.name!r})"

    def backend_choice(self):
        """The back end that runs this layer now, and why (``rnnkit.backends.Choice``)."""
        return backends.choose(self._name, self.backend, self.cell, self.cell_options, self.dtype)

    def __call__(self, x, lengths=None, state=None):
        """Inference: ``(output, state)``; no dropout, nothing kept for backward."""
        result, _ = self._run(x, lengths, state, training=False)
        return result

    def forward(self, x, lengths=None, state=None):
        """Training path: ``((output, state), backward)``.

        Args:
            x: (T, B, input_size), or (B, T, input_size) when ``batch_first``; or a PyTorch
                ``PackedSequence``, run as ``rnnkit.from_packed(x)`` (then lengths must be None,
                and output and d_x are padded, not packed).
            lengths: (B,) ints in [1, T], or None when every sequence has T steps.
            state: ``h`` (or ``(h, c)`` for LSTM: one array per part of the cell's state), each
                (num_layers * num_directions, B, S); None means zeros.
        Returns:
            output: (T, B, output_size) (batch first if ``batch_first``), zero past each length;
            state: the final state, taken at each sequence's last valid step;
            backward(d_output, d_state=None) -> (d_x, d_state0): gradients with respect to x
                and the initial state; parameter gradients accumulate in ``self.grads``.
        """
        return self._run(x, lengths, state, training=True)

    def _stack_shapes(self, batch: int) -> tuple:
        """The shape of each part of the state stack: (num_layers * num_directions, B, S)."""
        return tuple((self.num_layers * self.directions, batch, size) for size in self.state_sizes)

    def _run(self, x, lengths, state, training: bool):
        dtype = self.dtype
        x, lengths = padding.unpacked_input(x, lengths, self.batch_first)
        x = _checks.sequence_batch(x, self.input_size, dtype, self.batch_first)  # (T, B, I)
        steps, batch, _ = x.shape
        lengths = _checks.sequence_lengths(lengths, batch, steps)
        choice = self.backend_choice()
        self._check_memory(steps, batch, training)
        shapes = self._stack_shapes(batch)
        meaning = "(num_layers*directions, B, S)"
        state0 = _checks.state_parts(state, self.cell.state, shapes, dtype, "state", meaning)
        order = reversal_order(lengths, steps)
        final = tuple(np.empty(shape, dtype=dtype) for shape in shapes)
        layer_input = x
        layer_backwards = []  # per layer: (dropout mask or None, [backward per direction])
        for layer in range(self.num_layers):
            mask = None
            if training and self.dropout > 0.0 and layer > 0:
                mask = inverted_mask(self.rng, layer_input.shape, self.dropout, dtype)  # (T, B, F)
                layer_input = layer_input * mask
            args = (choice, layer, layer_input, state0, final, lengths, order, training)
            outputs, backwards = zip(
                *self._each_direction(choice, self._run_direction, args), strict=True
            )
            layer_input = self._merge(outputs)
            layer_backwards.append((mask, backwards))
        output = layer_input.transpose(1, 0, 2) if self.batch_first else layer_input
        result = (output, _checks.public_state(final))
        if not training:
            return result, None
        output.flags.writeable = False  # backward reads it: editing it would corrupt gradients

        def backward(d_output, d_state=None):
            return self._backward(
                choice, d_output, d_state, layer_backwards, order, output.shape, shapes
            )

        return result, single_use(backward)

    def _check_memory(self, steps: int, batch: int, training: bool) -> None:
        """UserError before a run whose arrays cannot fit in memory (an estimate: per layer and
        direction the input projection, the gates and the states, (T, B, ~2G+4 H) for training,
        which keeps them all for backward; inference holds one layer's at a time)."""
        width = self.hidden_size * (2 * self.cell.gates + 2) + 2 * sum(self.state_sizes)
        per_layer = steps * batch * width * self.directions
        layers = self.num_layers if training else 1
        check_fits(
            per_layer * layers * self.dtype.itemsize,
            f"{self._name} over {steps} steps of {batch} sequences with hidden size "
            f"{self.hidden_size}",
            "use shorter sequences, fewer sequences at a time or a smaller hidden size",
        )

    def _each_direction(self, choice, run, args: tuple) -> list:
        """``[run(0, *args)]``, or ``[run(0, *args), run(1, *args)]`` for a bidirectional layer,
        side by side on the compiled back end (``backends.run_together``): the two directions
        are independent."""
        if self.directions == 1:
            return [run(0, *args)]
        return list(backends.run_together(choice, lambda: run(0, *args), lambda: run(1, *args)))

    def _run_direction(
        self, direction, choice, layer, layer_input, state0, final, lengths, order, training
    ):
        """One direction of one layer, forward: its output in time order and its backward (None
        for inference); writes its final state into ``final``."""
        index = layer * self.directions + direction
        inputs = layer_input if direction == 0 else reverse_in_time(layer_input, order)
        weights = self._weights(layer, direction)
        start = tuple(part[index] for part in state0)
        y, state_n, backward = backends.run_direction(
            choice, self.cell, self.cell_options, inputs, weights, start, lengths, training
        )
        for part, value in zip(final, state_n, strict=True):
            part[index] = value
        return (y if direction == 0 else reverse_in_time(y, order)), backward

    def _backward_direction(
        self, direction, choice, layer, backwards, d_layer_output, d_final, d_state0, record, order
    ):
        """One direction of one layer, backward: ``(dx, grads)``, dx in time order; writes its
        gradients at the initial state into ``d_state0`` and its dL/dh into ``record``."""
        index = layer * self.directions + direction
        width = self.state_sizes[0]
        dy = d_layer_output
        if self.directions == 2 and self.merge == "concat":
            dy = dy[:, :, direction * width : (direction + 1) * width]  # (T, B, S)
        if direction == 1:
            dy = reverse_in_time(dy, order)
        dh_record = None if record is None else record[index]  # (T, B, S)
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
        return np.concatenate(outputs, axis=2)  # (T, B, 2S)

    def _backward(self, choice, d_output, d_state, layer_backwards, order, output_shape, shapes):
        dtype = self.dtype
        d_output = _checks.float_array(d_output, "d_output", dtype)
        _checks.check_shape(
            d_output, output_shape, "d_output", "the output's shape", "pass d(loss)/d(output)"
        )
        if self.batch_first:
            d_output = d_output.transpose(1, 0, 2)  # (B, T, F) -> (T, B, F)
        d_final = _checks.state_parts(
            d_state, self.cell.state, shapes, dtype, "d_state", "the state's shape"
        )
        d_state0 = tuple(np.empty(shape, dtype=dtype) for shape in shapes)
        record = None
        if self.dh_records is not None:
            steps, batch = d_output.shape[:2]
            record = np.zeros((shapes[0][0], steps, batch, shapes[0][2]), dtype)  # (L*D, T, B, S)
        d_layer_output = d_output
        for layer in reversed(range(self.num_layers)):
            mask, backwards = layer_backwards[layer]
            args = (choice, layer, backwards, d_layer_output, d_final, d_state0, record, order)
            results = self._each_direction(choice, self._backward_direction, args)
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
        if type(self) is Recurrent:
            return (
                f"Recurrent({self.cell.name!r}, {self.input_size}, {self.hidden_size}, {options})"
            )
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size}, {options})"


class RNN(Recurrent):
    """Elman RNN: h[t] = f(W_ih x[t] + b_ih + W_hh h[t-1] + b_hh), f = tanh or relu.

    Arguments as ``torch.nn.RNN`` plus ``merge`` ('concat' or 'sum' of the two directions),
    ``init`` ('uniform', 'xavier_orthogonal' or 'identity'), ``dtype``, ``seed`` and
    ``backend`` (see ``Recurrent``).
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
        super().__init__(
            "rnn", input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, nonlinearity=nonlinearity, **options,
        )  # fmt: skip

    @property
    def nonlinearity(self) -> str:
        return self.cell_options["nonlinearity"]


class LSTM(Recurrent):
    """LSTM with PyTorch's gates i, f, g, o: c = f*c + i*g, h = o*tanh(c), or with
    ``proj_size`` P > 0 h = W_hr (o*tanh(c)), P wide (``weight_hr_l{k}`` (P, H)).

    Arguments as ``torch.nn.LSTM`` plus ``merge``, ``init``, ``dtype``, ``seed``, ``backend``
    and ``forget_bias`` (sets the forget gate's bias; 'xavier_orthogonal' uses 1.0). The state
    is the tuple ``(h, c)``: h (num_layers * num_directions, B, P or H), c (..., B, H). The
    compiled back end has no projection: with proj_size > 0 the reference loop runs.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        **options,
    ) -> None:
        super().__init__(
            "lstm", input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, proj_size=proj_size, **options,
        )  # fmt: skip

    @property
    def proj_size(self) -> int:
        return self.cell_options["proj_size"]


class GRU(Recurrent):
    """GRU with PyTorch's gates r, z, n: n = tanh(W_in x + b_in + r*(W_hn h + b_hn)),
    h = (1-z)*n + z*h.

    Arguments as ``torch.nn.GRU`` plus ``merge``, ``init``, ``dtype``, ``seed`` and ``backend``.
    """

    def __init__(self, input_size: int, hidden_size: int, *args, **options) -> None:
        super().__init__("gru", input_size, hidden_size, *args, **options)
