"""Forecasting: a window of past steps (numeric, several variables) -> the next ``horizon`` values
of one target.

Recurrent stack over the window -> its final hidden state -> dropout -> Linear(horizon). The model
works in scaled units; the scaling (fitted on the training split only) is kept beside it in the
model file (see ``rnnkit.tasks.forecasting``).
"""

from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError
from rnnkit.io._schema import _shown
from rnnkit.models.encoder import SequenceEncoder
from rnnkit.nn import _checks
from rnnkit.nn.dropout import Dropout
from rnnkit.nn.linear import Linear
from rnnkit.nn.module import Module

MAX_MEMBERS = 1000  # an ensemble's size; each member's seed is drawn before any is built


class Forecaster(Module):
    """The next ``horizon`` values from windows (T, B, input_size) of equal length T.

    Args:
        input_size: variables per step. horizon: values to predict, >= 1.
        hidden_size, num_layers, cell ("rnn", "lstm", "gru"): the recurrent stack.
        dropout: between recurrent layers and on the final state (training only).
        dtype: "float32" or "float64". seed: for the initial weights and dropout masks.
    """

    def __init__(
        self,
        input_size: int,
        horizon: int = 1,
        *,
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: str = "gru",
        dropout: float = 0.0,
        dtype="float32",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise UserError(f"horizon must be a whole number >= 1, got {_shown(horizon)}")
        seeds = _checks.generator("Forecaster", seed).integers(2**32, size=3)
        self.input_size, self.horizon = input_size, horizon
        self.encoder = self._add_child(
            "encoder",
            SequenceEncoder(
                input_size=input_size,
                hidden_size=hidden_size,
                num_layers=num_layers,
                cell=cell,
                dropout=dropout,
                dtype=dtype,
                seed=seeds[0],
            ),
        )
        self.dropout = Dropout(dropout, seed=seeds[1])
        self.head = self._add_child(
            "head", Linear(hidden_size, horizon, dtype=dtype, seed=seeds[2])
        )
        self._config = {
            "input_size": input_size,
            "horizon": horizon,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "cell": cell,
            "dropout": float(dropout),
        }

    def config(self) -> dict:
        return {**self._config, "dtype": self.dtype.name}

    def __call__(self, windows) -> np.ndarray:
        """Inference: predictions (B, horizon) for windows (T, B, input_size)."""
        _, last_h = self.encoder(windows)
        return self.head(last_h[0])

    def forward(self, windows):
        """Training path: ``(predictions (B, horizon), backward)``; ``backward(d_predictions)``
        accumulates the parameter gradients and returns d(windows) (T, B, input_size)."""
        (output, last_h), encoder_backward = self.encoder.forward(windows)
        state, dropout_backward = self.dropout.forward(last_h[0])  # (B, H): one direction
        predictions, head_backward = self.head.forward(state)

        def backward(d_predictions):
            d_state = dropout_backward(head_backward(d_predictions))
            return encoder_backward(np.zeros_like(output), d_state[None])

        return predictions, backward


class ForecastEnsemble(Module):
    """``members`` Forecasters of the same shape from different initial weights, trained side by
    side (each on its own loss: see ``rnnkit.tasks.forecasting``); a forecast is their mean.

    Averaging independently started networks cancels part of what each got from its particular
    start, which on small data sets (a few years of daily weather) is a large share of the error.

    Args:
        input_size, horizon, and ``options`` (hidden_size, num_layers, cell, dropout, dtype): each
        member's, as ``Forecaster`` takes them. members: how many, >= 1. seed: for every
        member's initial weights and dropout masks.
    """

    def __init__(
        self, input_size: int, horizon: int = 1, *, members: int = 5, seed=None, **options
    ) -> None:
        super().__init__()
        whole = isinstance(members, int) and not isinstance(members, bool)
        if not (whole and 1 <= members <= MAX_MEMBERS):
            raise UserError(
                f"members must be a whole number >= 1 and <= {MAX_MEMBERS}, got {_shown(members)}"
            )
        seeds = _checks.generator("ForecastEnsemble", seed).integers(2**32, size=members)
        self.members = [
            self._add_child(f"member{index}", Forecaster(input_size, horizon, seed=each, **options))
            for index, each in enumerate(seeds)
        ]

    def config(self) -> dict:
        return {**self.members[0].config(), "members": len(self.members)}

    def generators(self, prefix: str = "") -> dict[str, np.random.Generator]:
        found = {}
        for index, member in enumerate(self.members):
            found.update(member.generators(f"{prefix}member{index}."))
        return found

    def __call__(self, windows) -> np.ndarray:
        """Inference: the members' mean predictions (B, horizon) for windows (T, B, input_size)."""
        return np.mean([member(windows) for member in self.members], axis=0)
