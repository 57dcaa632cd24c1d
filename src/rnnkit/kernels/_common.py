"""Helpers of the time loops, the reference and the compiled: the ragged-batch step masks and
the input projection's products (one each for all steps)."""

from __future__ import annotations

import numpy as np


def step_masks(lengths: np.ndarray | None, steps: int, dtype: np.dtype) -> np.ndarray | None:
    """Which sequences are still running at each step: (T, B, 1) of 1.0/0.0, or None if all are.

    ``lengths`` is (B,) ints in [1, T], or None for a batch of full-length sequences.
    """
    if lengths is None:
        return None
    running = np.arange(steps)[:, None] < lengths[None, :]  # (T, B)
    return running[:, :, None].astype(dtype)  # (T, B, 1)


def input_projection(x: np.ndarray, w_ih: np.ndarray) -> np.ndarray:
    """xw = x @ W_ih.T for all steps in one product: x (T, B, I), w_ih (G, I) -> (T, B, G)."""
    steps, batch, inputs = x.shape
    return (x.reshape(steps * batch, inputs) @ w_ih.T).reshape(steps, batch, -1)  # (T*B, G)


def input_gradient(dxw: np.ndarray, w_ih: np.ndarray) -> np.ndarray:
    """dx = dxw @ W_ih for all steps in one product: dxw (T, B, G), w_ih (G, I) -> (T, B, I)."""
    steps, batch, gates = dxw.shape
    return (dxw.reshape(steps * batch, gates) @ w_ih).reshape(steps, batch, -1)  # (T*B, I)
