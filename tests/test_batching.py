"""Seeded shuffling of a dataset into minibatches."""

import numpy as np
import pytest

from rnnkit.train.batching import epoch_batches


def test_each_epoch_covers_every_example_once():
    batches = epoch_batches(10, 4, seed=3, epoch=0)
    assert [len(batch) for batch in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(10))


def test_order_depends_on_seed_and_epoch_only():
    first = np.concatenate(epoch_batches(50, 8, seed=1, epoch=2))
    again = np.concatenate(epoch_batches(50, 8, seed=1, epoch=2))
    next_epoch = np.concatenate(epoch_batches(50, 8, seed=1, epoch=3))
    other_seed = np.concatenate(epoch_batches(50, 8, seed=2, epoch=2))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, next_epoch)
    assert not np.array_equal(first, other_seed)


def test_no_shuffle_keeps_the_order():
    np.testing.assert_array_equal(
        np.concatenate(epoch_batches(7, 3, 0, 5, shuffle=False)), np.arange(7)
    )


def test_empty_data_is_refused():
    with pytest.raises(ValueError, match="at least one example"):
        epoch_batches(0, 4, 0, 0)
