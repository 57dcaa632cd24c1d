"""Cells: one time step at a time (streaming), in PyTorch's call form ``cell(x, state)``.

A cell runs the same kernel as the layers, over a sequence of one step, so its numbers are the
layers' numbers. Parameters are named as PyTorch's cells name them: ``weight_ih``, ``weight_hh``,
``bias_ih``, ``bias_hh``.
"""

from __future__ import annotations

import numpy as np

from rnnkit.backends.compiled import _fused
from rnnkit.errors import UserError
from rnnkit.kernels import gru, lstm, rnn
from rnnkit.nn import _checks
from rnnkit.nn._direction import forward_direction
from rnnkit.nn.init import check_scheme, initial_weights, weight_count
from rnnkit.nn.module import Module, amount, reserve, single_use

FUSED_CELL_BATCH = 8  # up to this batch a compiled row-by-row step beats two BLAS calls


class _Cell(Module):
    """Shared machinery of RNNCell, LSTMCell and GRUCell."""

    _kernel = rnn
    _gates = 1
    _state_parts = 1
    _fused_cell = None  # the name of its compiled inference step (_fused_loops.cell_step), if any

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        init: str = "uniform",
        dtype=np.float32,
        seed: int | None = None,
        forget_bias: float | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        _checks.sizes(name, input_size=input_size, hidden_size=hidden_size)
        _checks.flags(name, bias=bias)
        check_scheme(init, name)
        _checks.forget_bias(name, forget_bias, self._gates, bias)
        dtype = _checks.float_dtype(name, dtype)
        count = weight_count(input_size, hidden_size, self._gates, bias)
        reserve(count, dtype, f"{name}({amount(input_size)}, {amount(hidden_size)})")
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.bias = bool(bias)
        self.init = init
        self.forget_bias = forget_bias
        self.rng = _checks.generator(name, seed)
        weights = initial_weights(
            init, input_size, hidden_size, self._gates, bias, self.rng, dtype, forget_bias
        )
        for role, value in weights.items():
            self._add_param(role, value)

    def _kernel_options(self) -> dict:
        return {}

    def config(self) -> dict:
        config = {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "bias": self.bias,
            "init": self.init,
            "dtype": self.dtype.name,
        }
        if self.forget_bias is not None:
            config["forget_bias"] = self.forget_bias
        return config

    def __call__(self, x, state=None):
        """One step: the new state ``h`` (or ``(h, c)``), each (B, hidden_size).

        A float32 step of a few examples runs in one compiled call when numba is installed: a
        stream of single examples then pays almost no overhead per step.
        """
        new_state = self._compiled_step(x, state)
        if new_state is None:
            new_state, _ = self.forward(x, state)
        return new_state

    def _compiled_step(self, x, state):
        """The new state from ``_fused_loops`` (``self._fused_cell``) when x (B, input_size) and
        the state parts (B, hidden_size) are C-ordered float32 arrays, B <= FUSED_CELL_BATCH,
        and every value is finite; else None, and the checked path runs (and names the problem).
        The compiled step checks the types (its signature), the shapes and the values itself: a
        stream of single examples pays little per step.
        """
        name = self._fused_cell
        if not (name and isinstance(x, np.ndarray) and x.ndim == 2):
            return None
        batch = x.shape[0]
        fused = _fused.loops()
        if fused is None or not 0 < batch <= FUSED_CELL_BATCH:
            return None
        parts = self._state_parts
        shape = (batch, self.hidden_size)
        if state is None:
            state = (np.zeros(shape, np.float32),) * parts
        elif parts == 1:
            state = (state,)
        if not (isinstance(state, tuple) and len(state) == parts):
            return None
        params = self.params
        if self.bias:
            biases = (params["bias_ih"], params["bias_hh"])
        else:
            biases = (np.zeros(self._gates * self.hidden_size, np.float32),) * 2  # (G*H,) each
        h = np.empty(shape, np.float32)
        new_state = (h,) if parts == 1 else (h, np.empty(shape, np.float32))  # (h,) or (h, c)
        try:
            done = fused.cell_step(name)(
                x, *state, params["weight_ih"], params["weight_hh"], *biases, *new_state
            )
        except TypeError:  # not float32 C-ordered arrays: no signature of the step matches
            return None
        return _checks.public_state(new_state) if done else None

    def forward(self, x, state=None):
        """One step, training path: ``(new_state, backward)``.

        Args:
            x: (B, input_size). state: ``h`` or ``(h, c)``, each (B, hidden_size); None = zeros.
        Returns:
            the new state, and ``backward(d_state) -> (d_x, d_state0)`` where ``d_state`` is the
            gradient with respect to the new state (``(dh, dc)`` for LSTM; None parts are zero).
            Parameter gradients accumulate in ``self.grads``.
        """
        dtype = self.dtype
        x = _checks.float_array(x, "x", dtype)
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise UserError(
                f"x must have shape (B, input_size={self.input_size}), got {x.shape}; "
                "for one example add a batch axis (x[None])"
            )
        if x.shape[0] == 0:
            raise UserError(f"x is empty (shape {x.shape}); give at least one example")
        shape = (x.shape[0], self.hidden_size)
        state0 = _checks.state_parts(state, self._state_parts, shape, dtype, "state", "(B, H)")
        _, state_n, backward_step = forward_direction(
            self._kernel, x[None], self.params, state0, None, **self._kernel_options()
        )  # x[None]: (1, B, I), a sequence of one step

        def backward(d_state):
            d_new = _checks.state_parts(
                d_state, self._state_parts, shape, dtype, "d_state", "(B, H)"
            )
            dy = np.zeros((1, *shape), dtype=dtype)  # the state is the only output
            dx, d_state0, grads = backward_step(dy, d_new)
            for role, grad in grads.items():
                self.grads[role] += grad
            return dx[0], _checks.public_state(d_state0)

        state_n = tuple(part.copy() for part in state_n)  # the cache keeps its own
        return _checks.public_state(state_n), single_use(backward)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size})"


class RNNCell(_Cell):
    """One step of the Elman RNN, as ``torch.nn.RNNCell``: h' = f(W_ih x + b_ih + W_hh h + b_hh)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        **options,
    ) -> None:
        _checks.choice("RNNCell", "nonlinearity", nonlinearity, rnn.NONLINEARITIES)
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, **options)

    def _kernel_options(self) -> dict:
        return {"nonlinearity": self.nonlinearity}

    def config(self) -> dict:
        return {**super().config(), "nonlinearity": self.nonlinearity}


class LSTMCell(_Cell):
    """One LSTM step, as ``torch.nn.LSTMCell``; the state is ``(h, c)``."""

    _kernel = lstm
    _gates = 4
    _state_parts = 2
    _fused_cell = "lstm_cell"


class GRUCell(_Cell):
    """One GRU step, as ``torch.nn.GRUCell``."""

    _kernel = gru
    _gates = 3
    _fused_cell = "gru_cell"
