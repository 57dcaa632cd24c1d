"""Minibatches of a fixed dataset: a seeded shuffle per epoch, so a resumed run sees the same
batches in the same order."""

from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError


def epoch_batches(
    count: int, batch_size: int, seed: int, epoch: int, shuffle: bool = True
) -> list[np.ndarray]:
    """Index arrays of the batches of one epoch over ``count`` examples.

    The order is a permutation drawn from a generator seeded with ``(seed, epoch)``: the same
    for the same seed and epoch, different from epoch to epoch. The last batch may be smaller.
    """
    if count < 1 or batch_size < 1:
        raise UserError(f"need at least one example and batch_size >= 1, got {count}, {batch_size}")
    order = np.random.default_rng([seed, epoch]).permutation(count) if shuffle else np.arange(count)
    return [order[start : start + batch_size] for start in range(0, count, batch_size)]
