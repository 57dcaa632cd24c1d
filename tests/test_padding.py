"""The ragged-batch helpers against torch.nn.utils.rnn, their round trips, a layer given a torch
PackedSequence, and the errors bad input must raise."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit.nn.padding import from_packed, pad_sequence, to_packed_arrays, unpad_sequence

LENGTHS = [3, 6, 1, 6, 4]  # unsorted, with a tie, so the sorted order matters


def sequences(dtype, trailing=(2,), lengths=LENGTHS, seed=0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((n, *trailing)) * 10).astype(dtype) for n in lengths]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("trailing", [(), (2,), (2, 3)])
@pytest.mark.parametrize("batch_first", [False, True])
def test_pad_sequence_matches_torch(torch, dtype, trailing, batch_first):
    arrays = sequences(dtype, trailing)
    padded, lengths = pad_sequence(arrays, batch_first=batch_first, padding_value=-7)
    expected = torch.nn.utils.rnn.pad_sequence(
        [torch.from_numpy(a) for a in arrays], batch_first=batch_first, padding_value=-7
    )
    assert padded.dtype == dtype
    np.testing.assert_array_equal(padded, expected.numpy())
    np.testing.assert_array_equal(lengths, LENGTHS)
    assert lengths.dtype == np.int64


@pytest.mark.parametrize("batch_first", [False, True])
def test_unpad_sequence_inverts_pad_sequence(batch_first):
    arrays = sequences(np.float32, lengths=[2, 0, 5])
    padded, lengths = pad_sequence(arrays, batch_first=batch_first)
    restored = unpad_sequence(padded, lengths, batch_first=batch_first)
    assert len(restored) == len(arrays)
    for original, sequence in zip(arrays, restored, strict=True):
        np.testing.assert_array_equal(sequence, original)


def pack(torch, padded, lengths, enforce_sorted):
    return torch.nn.utils.rnn.pack_padded_sequence(
        torch.from_numpy(padded), torch.from_numpy(lengths), enforce_sorted=enforce_sorted
    )


@pytest.mark.parametrize("enforce_sorted", [False, True])
def test_from_packed_matches_pad_packed_sequence(torch, enforce_sorted):
    lengths = sorted(LENGTHS, reverse=True) if enforce_sorted else LENGTHS
    padded, lengths = pad_sequence(sequences(np.float32, lengths=lengths), padding_value=3.0)
    packed = pack(torch, padded, lengths, enforce_sorted)
    expected, expected_lengths = torch.nn.utils.rnn.pad_packed_sequence(packed)
    result, result_lengths = from_packed(packed)
    np.testing.assert_array_equal(result, expected.numpy())
    np.testing.assert_array_equal(result_lengths, expected_lengths.numpy())
    batch_first, _ = from_packed(packed, batch_first=True)
    np.testing.assert_array_equal(batch_first, result.transpose(1, 0, 2))


@pytest.mark.parametrize("enforce_sorted", [False, True])
def test_to_packed_arrays_matches_pack_padded_sequence(torch, enforce_sorted):
    lengths = sorted(LENGTHS, reverse=True) if enforce_sorted else LENGTHS
    padded, lengths = pad_sequence(sequences(np.float64, (2, 3), lengths=lengths))
    packed = pack(torch, padded, lengths, enforce_sorted)
    fields = to_packed_arrays(padded, lengths, enforce_sorted=enforce_sorted)
    for name, value in zip(packed._fields, fields, strict=True):
        expected = getattr(packed, name)
        if expected is None:
            assert value is None, name
        else:
            np.testing.assert_array_equal(value, expected.numpy(), err_msg=name)
            assert value.dtype == expected.numpy().dtype, name
    rebuilt = from_packed(torch.nn.utils.rnn.PackedSequence(*map(_tensor(torch), fields)))
    np.testing.assert_array_equal(rebuilt[0], padded)


def _tensor(torch):
    return lambda value: None if value is None else torch.from_numpy(value)


@pytest.mark.parametrize("batch_first", [False, True])
def test_lstm_given_packed_sequence_equals_padded_and_lengths(torch, batch_first):
    layer = rnnkit.LSTM(2, 3, num_layers=2, bidirectional=True, batch_first=batch_first, seed=0)
    padded, lengths = pad_sequence(sequences(np.float32), batch_first=batch_first)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.from_numpy(padded), torch.from_numpy(lengths), batch_first, enforce_sorted=False
    )
    expected = layer(padded, lengths)
    (output, state), backward = layer.forward(packed)
    np.testing.assert_array_equal(output, expected[0])
    for part, expected_part in zip(state, expected[1], strict=True):
        np.testing.assert_array_equal(part, expected_part)
    d_x, _ = backward(np.ones_like(output))
    assert d_x.shape == padded.shape
    with pytest.raises(rnnkit.UserError, match="lengths must be None"):
        layer(packed, lengths)


class FakePacked:
    def __init__(self, data, batch_sizes, unsorted_indices=None):
        self.data, self.batch_sizes = data, batch_sizes
        self.sorted_indices = self.unsorted_indices = unsorted_indices


ROWS = np.zeros((4, 2), dtype=np.float32)
PADDED = np.zeros((3, 2, 1), dtype=np.float32)
BAD = [
    (pad_sequence, ([],), rnnkit.UserError, "sequences is empty"),
    (pad_sequence, (np.zeros((2, 3)),), rnnkit.UserTypeError, "must be a list"),
    (pad_sequence, ([[1.0, 2.0]],), rnnkit.UserTypeError, r"sequences\[0\] is a list"),
    (pad_sequence, ([np.float32(1)],), rnnkit.UserTypeError, "not an array"),
    (pad_sequence, ([np.zeros(2)[0:1].reshape(())],), rnnkit.UserError, "is a scalar"),
    (pad_sequence, ([ROWS, ROWS.astype(np.float64)],), rnnkit.UserTypeError, "dtype float64"),
    (pad_sequence, ([ROWS, np.zeros((4, 3), np.float32)],), rnnkit.UserError, "trailing shape"),
    (unpad_sequence, (PADDED, np.array([1, 4])), rnnkit.UserError, r"in \[0, 3\]"),
    (unpad_sequence, (PADDED, np.array([1, 2, 3])), rnnkit.UserError, r"shape \(B,\)"),
    (unpad_sequence, (PADDED, np.array([1.0, 2.0])), rnnkit.UserTypeError, "integer"),
    (unpad_sequence, (np.zeros(3), np.array([1])), rnnkit.UserError, "at least 2-D"),
    (to_packed_arrays, (PADDED, np.array([0, 2])), rnnkit.UserError, "drop empty sequences"),
    (from_packed, (ROWS,), rnnkit.UserTypeError, "takes a PackedSequence"),
    (from_packed, (FakePacked(ROWS, np.array([1, 3])),), rnnkit.UserError, "non-increasing"),
    (from_packed, (FakePacked(ROWS, np.array([2, 1])),), rnnkit.UserError, "adding up to its 4"),
    (from_packed, (FakePacked(ROWS, np.array([2, 2]), np.array([0, 0])),), rnnkit.UserError,
     "permutation"),
]  # fmt: skip


@pytest.mark.parametrize(("function", "args", "error", "message"), BAD)
def test_bad_input_raises_one_line_error(function, args, error, message):
    with pytest.raises(error, match=message) as caught:
        function(*args)
    assert "\n" not in str(caught.value)


def test_sorted_lengths_and_padding_side_are_checked():
    with pytest.raises(rnnkit.UserError, match="sorted longest first"):
        to_packed_arrays(PADDED, np.array([1, 3]), enforce_sorted=True)
    with pytest.raises(rnnkit.UserError, match="padding_side must be 'right'"):
        pad_sequence([ROWS], padding_side="left")
