"""Train / validation / test splits: shuffled (for independent examples) or chronological (for
time series, where the future must never leak into training)."""

from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """ValueError unless both fractions are in (0, 1) and leave some data for training."""
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 1:
            raise UserError(f"{name} must be in (0, 1), got {value}; try 0.1")
    if val_fraction + test_fraction >= 1:
        raise UserError(
            f"val_fraction + test_fraction must be below 1 (the rest trains), got "
            f"{val_fraction} + {test_fraction}; lower them"
        )


def split_sizes(count: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """(train, validation, test) counts: the last two rounded down, each at least 1."""
    check_fractions(val_fraction, test_fraction)
    val = max(1, int(count * val_fraction))
    test = max(1, int(count * test_fraction))
    if count - val - test < 1:
        raise UserError(
            f"{count} examples are too few to split into training, validation and test sets; "
            "give more data"
        )
    return count - val - test, val, test


def shuffled_split(count: int, val_fraction: float, test_fraction: float, seed: int):
    """Index arrays (train, validation, test) of a permutation of ``range(count)`` drawn from a
    generator seeded with ``seed``: the same split for the same count, fractions and seed."""
    train, val, _ = split_sizes(count, val_fraction, test_fraction)
    order = np.random.default_rng(seed).permutation(count)
    return order[:train], order[train : train + val], order[train + val :]


def chronological_split(count: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(train_end, val_end): steps [0, train_end) train, [train_end, val_end) validate and
    [val_end, count) test, in time order."""
    train, val, _ = split_sizes(count, val_fraction, test_fraction)
    return train, train + val
