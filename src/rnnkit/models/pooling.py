"""Pooling a recurrent stack's outputs into one vector per sequence (many-to-one).

Modes, over each sequence's valid steps only (padding never counts):

- ``"last"``: the top layer's final hidden state; bidirectional, the forward direction's state at
  the last valid step joined with the reverse direction's state after reading back to step 0;
- ``"mean"``: the average of the outputs;
- ``"max"``: the element-wise maximum of the outputs.
"""

from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError

POOLINGS = ("last", "mean", "max")


def valid_steps(lengths: np.ndarray | None, steps: int, batch: int) -> np.ndarray:
    """(T, B) bool: True at the steps within each sequence's length (all, when lengths is None)."""
    if lengths is None:
        return np.ones((steps, batch), dtype=bool)
    return np.arange(steps)[:, None] < np.asarray(lengths)[None, :]  # (T, B)


def pool(output: np.ndarray, last_h: np.ndarray, lengths, mode: str):
    """One vector per sequence, and the way back.

    Args:
        output: (T, B, F) the top layer's outputs, zero past each length.
        last_h: (D, B, H) the top layer's final hidden state per direction, D * H = F.
        lengths: (B,) ints, or None when all sequences have T steps.
        mode: one of ``POOLINGS``.
    Returns:
        pooled: (B, F);
        backward(d_pooled) -> (d_output (T, B, F), d_last_h (D, B, H) or None).
    """
    steps, batch, features = output.shape
    if mode == "last":
        directions, _, hidden = last_h.shape
        pooled = last_h.transpose(1, 0, 2).reshape(batch, features)  # (D, B, H) -> (B, D*H)

        def backward_last(d_pooled):
            d_last_h = d_pooled.reshape(batch, directions, hidden).transpose(1, 0, 2)  # (D, B, H)
            return np.zeros_like(output), np.ascontiguousarray(d_last_h)

        return pooled, backward_last
    valid = valid_steps(lengths, steps, batch)[:, :, None]  # (T, B, 1)
    if mode == "mean":
        counts = valid.sum(axis=0)  # (B, 1): each sequence's length
        pooled = output.sum(axis=0) / counts  # (B, F); padding adds zeros

        def backward_mean(d_pooled):
            return np.where(valid, d_pooled / counts, 0.0).astype(output.dtype), None

        return pooled, backward_mean
    if mode == "max":
        masked = np.where(valid, output, -np.inf)  # (T, B, F): padding never wins
        winners = masked.argmax(axis=0)[None]  # (1, B, F): the step of each maximum
        pooled = np.take_along_axis(output, winners, axis=0)[0]  # (B, F)

        def backward_max(d_pooled):
            d_output = np.zeros_like(output)
            np.put_along_axis(d_output, winners, d_pooled[None], axis=0)
            return d_output, None

        return pooled, backward_max
    raise UserError(f"pooling={mode!r} is not one of {list(POOLINGS)}")
