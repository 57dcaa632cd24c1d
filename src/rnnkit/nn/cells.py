"""Cells: one time step at a time (streaming), in PyTorch's call form ``cell(x, state)``.

``RecurrentCell`` steps any registered cell; RNNCell, LSTMCell and GRUCell are it with
PyTorch's signatures. A step runs the same time loop as the layers, over a sequence of one
step, so its numbers are the layers' numbers. Parameters are named as PyTorch's cells name them:
``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``.
"""

from __future__ import annotations

import numpy as np

from rnnkit import backends, cells
from rnnkit.backends import check_backend, compiled
from rnnkit.errors import UserError
from rnnkit.nn import _checks
from rnnkit.nn.init import check_scheme, initial_weights, weight_count
from rnnkit.nn.module import Module, amount, reserve, single_use

COMPILED_STEP_BATCH = 8  # up to this batch a compiled row-by-row step beats two BLAS calls


class RecurrentCell(Module):
    """One step of any registered cell (``rnnkit.cells``).

    Args:
        cell: a registered cell's name. input_size, hidden_size, bias: as ``torch.nn.RNNCell``.
        init, dtype, seed, forget_bias, backend, **cell_options: as ``rnnkit.Recurrent``.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
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
        _checks.sizes(name, input_size=input_size, hidden_size=hidden_size)
        _checks.flags(name, bias=bias)
        check_scheme(init, name, self.cell)
        _checks.forget_bias(name, forget_bias, self.cell, bias)
        check_backend(name, backend)
        self.cell_options = self.cell.resolved_options(name, cell_options, hidden_size)
        dtype = _checks.float_dtype(name, dtype)
        shapes = self.cell.parameters(input_size, hidden_size, self.cell_options)
        reserve(
            weight_count(shapes, bias),
            dtype,
            f"{name}({amount(input_size)}, {amount(hidden_size)})",
        )
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.state_sizes = self.cell.sizes(hidden_size, self.cell_options)
        self.bias = bool(bias)
        self.init = init
        self.forget_bias = forget_bias
        self.backend = backend
        self.rng = _checks.generator(name, seed)
        weights = initial_weights(
            init, shapes, self.cell, hidden_size, bias, self.rng, dtype, forget_bias
        )
        for role, value in weights.items():
            self._add_param(role, value)
        if backend is not None:
            self.backend_choice()  # a back end asked for and unable to run: refused now

    def config(self) -> dict:
        config = {"cell": self.cell.name} if type(self) is RecurrentCell else {}
        config |= {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "bias": self.bias,
            "init": self.init,
            "dtype": self.dtype.name,
            **self.cell.config_options(self.cell_options),
        }
        if self.forget_bias is not None:
            config["forget_bias"] = self.forget_bias
        return config

    @property
    def _name(self) -> str:
        """The cell's name in messages: its class's, or its PyTorch name ('LSTMCell')."""
        if type(self) is not RecurrentCell:
            return type(self).__name__
        torch_name = self.cell.torch_name
        return f"{torch_name}Cell" if torch_name else f"RecurrentCell({self.cell.name!r})"

    def backend_choice(self):
        """The back end that runs this cell now, and why (``rnnkit.backends.Choice``)."""
        return backends.choose(self._name, self.backend, self.cell, self.cell_options, self.dtype)

    def __call__(self, x, state=None):
        """One step: the new state ``h`` (or ``(h, c)``: one array per part), each (B, S).

        A float32 step of a few examples on the compiled back end runs in one compiled call
        when the cell has one (LSTM, GRU): a stream of single examples then pays almost no
        overhead per step.
        """
        new_state = self._compiled_step(x, state)
        if new_state is None:
            new_state, _ = self._step(x, state, training=False)
        return new_state

    def _compiled_step(self, x, state):
        """The new state from the compiled streaming step, or None (take the checked path)."""
        if not (
            isinstance(x, np.ndarray) and x.ndim == 2 and 0 < x.shape[0] <= COMPILED_STEP_BATCH
        ):
            return None
        if self.backend_choice().name != "compiled":
            return None
        parts = len(self.cell.state)
        if state is None:
            state = tuple(np.zeros((x.shape[0], size), np.float32) for size in self.state_sizes)
        elif parts == 1:
            state = (state,)
        if not (isinstance(state, tuple) and len(state) == parts):
            return None
        new_state = compiled.step(self.cell, x, state, self.params)
        return None if new_state is None else _checks.public_state(new_state)

    def forward(self, x, state=None):
        """One step, training path: ``(new_state, backward)``.

        Args:
            x: (B, input_size). state: ``h`` or ``(h, c)``, each (B, S); None = zeros.
        Returns:
            the new state, and ``backward(d_state) -> (d_x, d_state0)`` where ``d_state`` is the
            gradient with respect to the new state (``(dh, dc)`` for LSTM; None parts are zero).
            Parameter gradients accumulate in ``self.grads``.
        """
        return self._step(x, state, training=True)

    def _step(self, x, state, training: bool):
        dtype = self.dtype
        x = _checks.float_array(x, "x", dtype)
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise UserError(
                f"x must have shape (B, input_size={self.input_size}), got {x.shape}; "
                "for one example add a batch axis (x[None])"
            )
        if x.shape[0] == 0:
            raise UserError(f"x is empty (shape {x.shape}); give at least one example")
        shapes = tuple((x.shape[0], size) for size in self.state_sizes)
        state0 = _checks.state_parts(state, self.cell.state, shapes, dtype, "state", "(B, S)")
        _, state_n, backward_step = backends.run_direction(
            self.backend_choice(),
            self.cell,
            self.cell_options,
            x[None],
            self.params,
            state0,
            None,
            training,
        )  # fmt: skip  (x[None]: (1, B, I), a sequence of one step)
        state_n = tuple(part.copy() for part in state_n)  # the cache keeps its own
        if not training:
            return _checks.public_state(state_n), None

        def backward(d_state):
            d_new = _checks.state_parts(
                d_state, self.cell.state, shapes, dtype, "d_state", "(B, S)"
            )
            dy = np.zeros((1, *shapes[0]), dtype=dtype)  # the state is the only output
            dx, d_state0, grads = backward_step(dy, d_new)
            for role, grad in grads.items():
                self.grads[role] += grad
            return dx[0], _checks.public_state(d_state0)

        return _checks.public_state(state_n), single_use(backward)

    def __repr__(self) -> str:
        if type(self) is RecurrentCell:
            return f"RecurrentCell({self.cell.name!r}, {self.input_size}, {self.hidden_size})"
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size})"


class RNNCell(RecurrentCell):
    """One step of the Elman RNN, as ``torch.nn.RNNCell``: h' = f(W_ih x + b_ih + W_hh h + b_hh)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        **options,
    ) -> None:
        super().__init__("rnn", input_size, hidden_size, bias, nonlinearity=nonlinearity, **options)

    @property
    def nonlinearity(self) -> str:
        return self.cell_options["nonlinearity"]


class LSTMCell(RecurrentCell):
    """One LSTM step, as ``torch.nn.LSTMCell``; the state is ``(h, c)``. Like PyTorch's, it
    has no ``proj_size``: ``RecurrentCell('lstm', ..., proj_size=P)`` steps a projected LSTM."""

    def __init__(self, input_size: int, hidden_size: int, *args, **options) -> None:
        if "proj_size" in options:
            raise UserError(
                "LSTMCell has no proj_size (nor has torch.nn.LSTMCell); use "
                "RecurrentCell('lstm', ..., proj_size=P), or rnnkit.LSTM(..., proj_size=P)"
            )
        super().__init__("lstm", input_size, hidden_size, *args, **options)


class GRUCell(RecurrentCell):
    """One GRU step, as ``torch.nn.GRUCell``."""

    def __init__(self, input_size: int, hidden_size: int, *args, **options) -> None:
        super().__init__("gru", input_size, hidden_size, *args, **options)
