"""Ragged batches as ``(padded, lengths)``, the form rnnkit's layers take, and their conversions.

``padded`` is time-major (T, B, *) (or (B, T, *) with ``batch_first``), each sequence right-padded
to the longest length T; ``lengths`` is (B,) int64, the valid steps of each sequence.

- ``pad_sequence`` / ``unpad_sequence``: a list of (L_i, *) arrays to ``(padded, lengths)`` and
  back, as PyTorch's functions of the same names (``pad_sequence`` also returns the lengths).
- ``from_packed``: a PyTorch ``PackedSequence`` to ``(padded, lengths)`` in the original batch
  order, as ``pad_packed_sequence``; torch is never imported (the object is duck-typed).
- ``to_packed_arrays``: ``(padded, lengths)`` to the four arrays of the ``PackedSequence`` that
  ``pack_padded_sequence`` builds, as NumPy arrays.
"""

from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError, UserTypeError
from rnnkit.nn import _checks
from rnnkit.nn.module import _to_numpy


def pad_sequence(sequences, *, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack sequences of different lengths into one right-padded array.

    Args:
        sequences: a non-empty list of NumPy arrays (or torch tensors), each (L_i, *), all of one
            dtype and one trailing shape *; L_i may be 0.
        batch_first: give (B, T, *) rather than (T, B, *).
        padding_value: the value of the steps past each length (cast to the sequences' dtype).
        padding_side: "right" only (rnnkit's layers read the valid steps first).
    Returns:
        padded: (T, B, *) (or (B, T, *)) with T = max L_i, of the sequences' dtype;
        lengths: (B,) int64, the L_i.
    """
    if padding_side != "right":
        raise UserError(
            f"padding_side must be 'right' (rnnkit's layers take right-padded batches), "
            f"got {padding_side!r}"
        )
    arrays = _sequence_arrays(sequences)
    lengths = np.array([len(array) for array in arrays], dtype=np.int64)
    first = arrays[0]
    steps = int(lengths.max())
    padded = np.full((steps, len(arrays), *first.shape[1:]), padding_value, dtype=first.dtype)
    for index, array in enumerate(arrays):
        padded[: len(array), index] = array
    if batch_first:
        padded = np.ascontiguousarray(np.swapaxes(padded, 0, 1))  # (T, B, *) -> (B, T, *)
    return padded, lengths


def unpad_sequence(padded, lengths, *, batch_first=False):
    """The inverse of ``pad_sequence``: the list of each sequence's valid steps.

    Args:
        padded: (T, B, *) (or (B, T, *) with ``batch_first``).
        lengths: (B,) integers in [0, T].
    Returns:
        a list of B arrays, the b-th (lengths[b], *): views into ``padded``.
    """
    padded = _padded_array(padded, batch_first)  # (T, B, *)
    steps, batch = padded.shape[:2]
    lengths = _checks.step_counts(lengths, batch, steps, minimum=0)
    return [padded[:length, index] for index, length in enumerate(lengths)]


def is_packed(value) -> bool:
    """Whether ``value`` looks like a PyTorch ``PackedSequence`` (has ``data`` and
    ``batch_sizes``)."""
    return hasattr(value, "batch_sizes") and hasattr(value, "data")


def from_packed(packed, *, batch_first=False):
    """A PyTorch ``PackedSequence`` as ``(padded, lengths)``, in the batch's original order.

    Args:
        packed: an object with ``data`` (N, *), ``batch_sizes`` (T,), ``sorted_indices`` and
            ``unsorted_indices`` ((B,) or None, as ``pack_padded_sequence`` makes them); torch
            tensors or NumPy arrays.
        batch_first: give (B, T, *) rather than (T, B, *).
    Returns:
        padded: (T, B, *) (or (B, T, *)) with zeros past each length, of the data's dtype;
        lengths: (B,) int64.
    """
    if not is_packed(packed):
        raise UserTypeError(
            f"from_packed takes a PackedSequence (with data and batch_sizes), got "
            f"{type(packed).__name__}; for a list of arrays use pad_sequence"
        )
    data = _to_numpy(packed.data)
    batch_sizes = _to_numpy(packed.batch_sizes)
    _check_batch_sizes(batch_sizes, len(data))
    steps, batch = len(batch_sizes), int(batch_sizes[0])
    sorted_padded = np.zeros((steps, batch, *data.shape[1:]), dtype=data.dtype)
    ends = np.cumsum(batch_sizes)
    for step, (end, size) in enumerate(zip(ends, batch_sizes, strict=True)):
        sorted_padded[step, :size] = data[end - size : end]
    # Sequence at sorted position j has as many steps as batches wider than j.
    sorted_lengths = (batch_sizes[None, :] > np.arange(batch)[:, None]).sum(axis=1)
    unsorted = _permutation(getattr(packed, "unsorted_indices", None), batch, "unsorted_indices")
    padded = sorted_padded[:, unsorted]  # (T, B, *) in the original order
    lengths = sorted_lengths[unsorted].astype(np.int64)
    if batch_first:
        padded = np.ascontiguousarray(np.swapaxes(padded, 0, 1))  # (T, B, *) -> (B, T, *)
    return padded, lengths


def to_packed_arrays(padded, lengths, *, batch_first=False, enforce_sorted=False):
    """``(padded, lengths)`` as the fields of the ``PackedSequence`` that PyTorch's
    ``pack_padded_sequence`` builds, as NumPy arrays (``PackedSequence(*fields)`` rebuilds it).

    Args:
        padded: (T, B, *) (or (B, T, *) with ``batch_first``).
        lengths: (B,) integers in [1, T]; sorted longest first when ``enforce_sorted``.
        enforce_sorted: the batch is already sorted, so no indices are returned.
    Returns:
        data: (sum(lengths), *), the valid steps, step by step, each step's sequences longest
        first; batch_sizes: (max(lengths),) int64, how many sequences have each step;
        sorted_indices: (B,) int64, the batch position of each sequence in that order, and
        unsorted_indices: (B,) int64, its inverse (both None when ``enforce_sorted``).
    """
    padded = _padded_array(padded, batch_first)  # (T, B, *)
    steps, batch = padded.shape[:2]
    lengths = _checks.step_counts(lengths, batch, steps)
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise UserError(
                "lengths must be sorted longest first with enforce_sorted=True, got "
                f"{lengths.tolist()}; sort the batch or pass enforce_sorted=False"
            )
        sorted_indices = unsorted_indices = None
        sorted_lengths, sorted_padded = lengths, padded
    else:
        sorted_indices = np.argsort(-lengths, kind="stable").astype(np.int64)
        unsorted_indices = np.argsort(sorted_indices).astype(np.int64)
        sorted_lengths, sorted_padded = lengths[sorted_indices], padded[:, sorted_indices]
    batch_sizes = (sorted_lengths[None, :] > np.arange(sorted_lengths[0])[:, None]).sum(axis=1)
    data = np.concatenate(
        [sorted_padded[step, :size] for step, size in enumerate(batch_sizes)]
    )  # (sum(lengths), *)
    return data, batch_sizes.astype(np.int64), sorted_indices, unsorted_indices


def unpacked_input(x, lengths, batch_first: bool):
    """A layer's ``(x, lengths)`` with a ``PackedSequence`` ``x`` turned into ``(padded,
    lengths)`` in the layer's layout; any other ``x`` passes through unchanged."""
    if not is_packed(x):
        return x, lengths
    if lengths is not None:
        raise UserError(
            "lengths must be None when x is a PackedSequence, which holds its own lengths; "
            "drop the lengths argument"
        )
    return from_packed(x, batch_first=batch_first)


def _sequence_arrays(sequences) -> list[np.ndarray]:
    """The sequences as NumPy arrays, checked: at least one, each (L_i, *), one dtype and one
    trailing shape."""
    if isinstance(sequences, np.ndarray) or not hasattr(sequences, "__len__"):
        raise UserTypeError(
            f"sequences must be a list of arrays, got {type(sequences).__name__}; "
            "wrap them in a list"
        )
    if len(sequences) == 0:
        raise UserError("sequences is empty; give at least one (L, *) array")
    arrays = []
    for index, item in enumerate(sequences):
        if not (isinstance(item, np.ndarray) or hasattr(item, "detach")):
            raise UserTypeError(
                f"sequences[{index}] is a {type(item).__name__}, not an array; "
                "convert it with np.asarray"
            )
        array = _to_numpy(item)
        if array.ndim == 0:
            raise UserError(
                f"sequences[{index}] is a scalar; each sequence needs a time axis (L, *)"
            )
        arrays.append(array)
    first = arrays[0]
    for index, array in enumerate(arrays[1:], start=1):
        if array.dtype != first.dtype:
            raise UserTypeError(
                f"sequences[{index}] has dtype {array.dtype}, sequences[0] {first.dtype}; "
                f"convert them to one dtype, e.g. .astype(np.{first.dtype.name})"
            )
        if array.shape[1:] != first.shape[1:]:
            raise UserError(
                f"sequences[{index}] has trailing shape {array.shape[1:]}, sequences[0] "
                f"{first.shape[1:]}; all sequences need the same shape after the time axis"
            )
    return arrays


def _padded_array(padded, batch_first: bool) -> np.ndarray:
    """The padded batch as a time-major (T, B, *) array."""
    padded = _to_numpy(padded)
    if padded.ndim < 2:
        layout = "(B, T, *)" if batch_first else "(T, B, *)"
        raise UserError(f"padded must be at least 2-D {layout}, got shape {padded.shape}")
    return np.swapaxes(padded, 0, 1) if batch_first else padded  # (B, T, *) -> (T, B, *)


def _check_batch_sizes(batch_sizes: np.ndarray, rows: int) -> None:
    """UserError unless ``batch_sizes`` is a non-empty, non-increasing (T,) run of positive
    integers adding up to the ``rows`` of the packed data."""
    valid = (
        batch_sizes.ndim == 1
        and batch_sizes.size > 0
        and batch_sizes.dtype.kind in "iu"
        and batch_sizes.min() > 0
        and not np.any(np.diff(batch_sizes) > 0)
        and int(batch_sizes.sum()) == rows
    )
    if not valid:
        raise UserError(
            f"the PackedSequence's batch_sizes {batch_sizes.tolist()} must be positive, "
            f"non-increasing integers adding up to its {rows} data rows; build it with "
            "torch.nn.utils.rnn.pack_padded_sequence"
        )


def _permutation(indices, batch: int, name: str) -> np.ndarray:
    """``indices`` as a (B,) int64 permutation of range(B); None means the identity."""
    if indices is None:
        return np.arange(batch)
    indices = _to_numpy(indices)
    if indices.shape != (batch,) or not np.array_equal(np.sort(indices), np.arange(batch)):
        raise UserError(
            f"the PackedSequence's {name} must be a permutation of range({batch}), got "
            f"{indices.tolist()}; build it with torch.nn.utils.rnn.pack_padded_sequence"
        )
    return indices.astype(np.int64)
