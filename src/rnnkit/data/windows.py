"""Sliding windows over a multivariate series, for forecasting: ``window`` past steps of every
input variable -> the next ``horizon`` values of the target."""

from __future__ import annotations

import numpy as np


def window_starts(count: int, window: int, horizon: int, first: int, end: int) -> np.ndarray:
    """The first target step ``t`` of each example whose targets ``[t, t + horizon)`` lie in
    ``[first, end)`` and whose inputs ``[t - window, t)`` lie in the series of ``count`` steps.

    Inputs may reach back before ``first`` (earlier data is the past, known at forecast time);
    targets never cross ``end``, so no target of one split appears in another.
    """
    return np.arange(max(first, window), min(end, count) - horizon + 1)


def make_windows(
    inputs: np.ndarray, target: np.ndarray, starts: np.ndarray, window: int, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Examples at ``starts``: windows (window, M, F), time-major, and targets (M, horizon)."""
    steps = starts[None, :] + np.arange(-window, 0)[:, None]  # (window, M): input step indices
    ahead = starts[:, None] + np.arange(horizon)[None, :]  # (M, horizon): target step indices
    return inputs[steps], target[ahead]
