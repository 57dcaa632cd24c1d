"""Helpers shared by the cell kernels: the logistic function and the ragged-batch step masks."""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The logistic function as 0.5 * (1 + tanh(x / 2)): never overflows, one transcendental."""
    out = np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


def step_masks(lengths: np.ndarray | None, steps: int, dtype: np.dtype) -> np.ndarray | None:
    """Which sequences are still running at each step: (T, B, 1) of 1.0/0.0, or None if all are.

    ``lengths`` is (B,) ints in [1, T], or None for a batch of full-length sequences.
    """
    if lengths is None:
        return None
    running = np.arange(steps)[:, None] < lengths[None, :]  # (T, B)
    return running[:, :, None].astype(dtype)  # (T, B, 1)


def previous_states(state0: np.ndarray, states: np.ndarray) -> np.ndarray:
    """The state each step started from: ``state0`` then ``states[:-1]``, shaped (T, B, H).

    At padded steps this is not the frozen state, but every gradient there is zero, so the
    products ``dW = sum_t d[t].T @ prev[t]`` do not see the difference.
    """
    return np.concatenate([state0[None], states[:-1]], axis=0)
