"""Input checks shared by the layers and cells: one-line errors that say what was expected,
what came, and how to fix it."""

from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError, UserTypeError
from rnnkit.io._schema import _shown
from rnnkit.nn.module import _to_numpy


def float_array(value, name: str, dtype: np.dtype) -> np.ndarray:
    """``value`` as an array of ``dtype``; TypeError for non-float data, ValueError for NaN/inf
    (including values too large for ``dtype``)."""
    array = _to_numpy(value)
    if array.dtype.kind != "f":
        raise UserTypeError(
            f"{name} has dtype {array.dtype}, but layers need floating-point data; "
            f"convert it first with .astype(np.{np.dtype(dtype).name})"
        )
    with np.errstate(over="ignore"):
        array = array.astype(dtype, copy=False)
    if array.size and not np.isfinite(array).all():
        raise UserError(
            f"{name} contains NaN or inf (or values beyond {np.dtype(dtype).name}'s range); "
            "clean or scale them before the layer"
        )
    return array


def check_shape(array: np.ndarray, expected: tuple, name: str, meaning: str, fix: str) -> None:
    """ValueError unless ``array.shape == expected``; ``meaning`` names the axes ('(T, B, I)')."""
    if array.shape != expected:
        raise UserError(f"{name} must have shape {meaning} = {expected}, got {array.shape}; {fix}")


def sequence_batch(x, input_size: int, dtype: np.dtype, batch_first: bool) -> np.ndarray:
    """The input as a time-major (T, B, I) array of ``dtype``."""
    x = float_array(x, "x", dtype)
    layout = "(B, T, input_size)" if batch_first else "(T, B, input_size)"
    if x.ndim != 3:
        raise UserError(
            f"x must be 3-D {layout}, got shape {x.shape}; for one sequence add a batch axis "
            f"({'x[None]' if batch_first else 'x[:, None]'})"
        )
    if batch_first:
        x = x.transpose(1, 0, 2)  # (B, T, I) -> (T, B, I)
    if x.shape[2] != input_size:
        raise UserError(
            f"x has {x.shape[2]} features, but the layer was built with input_size={input_size}; "
            "build it with the data's feature count or fix the data"
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise UserError(f"x is empty (shape {x.shape}); give at least one step of one sequence")
    return x


def sequence_lengths(lengths, batch: int, steps: int) -> np.ndarray | None:
    """Checked lengths as an int array (B,), or None when every sequence has all T steps."""
    if lengths is None:
        return None
    lengths = step_counts(lengths, batch, steps)
    return None if (lengths == steps).all() else lengths


def step_counts(lengths, batch: int, steps: int, minimum: int = 1) -> np.ndarray:
    """``lengths`` as (B,) int64, each in [minimum, T] (T = ``steps``); one-line errors for a
    non-integer dtype, another shape, or a length out of range."""
    lengths = _to_numpy(lengths)
    if lengths.dtype.kind not in "iu":
        raise UserTypeError(
            f"lengths has dtype {lengths.dtype}; give integer step counts, e.g. "
            "np.array([5, 3], dtype=np.int64)"
        )
    if lengths.shape != (batch,):
        raise UserError(
            f"lengths must have shape (B,) = ({batch},), one length per sequence, "
            f"got {lengths.shape}"
        )
    if batch and (lengths.min() < minimum or lengths.max() > steps):
        empty = "; drop empty sequences and pad to the longest" if minimum > 0 else ""
        raise UserError(
            f"lengths must lie in [{minimum}, {steps}] (the padded length T), got values from "
            f"{lengths.min()} to {lengths.max()}{empty}"
        )
    return lengths.astype(np.int64)


def state_parts(state, names: tuple, shapes: tuple, dtype: np.dtype, name: str, meaning: str):
    """A public state as a tuple of checked arrays, one per part: ``names`` the parts' names
    (``("h",)``, ``("h", "c")``), ``shapes`` their shapes. The public form is the array ``h``
    for one part and the tuple of parts for more (PyTorch's ``(h, c)``).

    ``None``, for the whole state or for one part, gives zeros. ``meaning`` names the axes of
    the shapes for the error message.
    """
    parts = len(names)
    if state is None:
        state = (None,) * parts
    elif parts > 1:
        if not isinstance(state, tuple | list) or len(state) != parts:
            got = f"{len(state)} parts" if isinstance(state, tuple | list) else type(state).__name__
            wanted = f"({', '.join(names)})"
            raise UserTypeError(f"{name} must be a tuple {wanted}, got {got}; pass {wanted}")
    elif isinstance(state, tuple | list):
        raise UserTypeError(f"{name} must be one array h, not a {type(state).__name__}; pass h")
    else:
        state = (state,)
    labels = [f"{name}[{i}] ({part})" for i, part in enumerate(names)] if parts > 1 else [name]
    arrays = []
    for part, label, shape in zip(state, labels, shapes, strict=True):
        if part is None:
            arrays.append(np.zeros(shape, dtype=dtype))
            continue
        array = float_array(part, label, dtype)
        check_shape(array, shape, label, meaning, "pass zeros of that shape or None")
        arrays.append(array)
    return tuple(arrays)


def public_state(parts: tuple):
    """The inverse of ``state_parts``: ``h`` for one part, the tuple ``(h, c, ...)`` for more."""
    return parts[0] if len(parts) == 1 else tuple(parts)


def first_part(state):
    """``h``, the first part of a public state (the array itself, or the tuple's first)."""
    return state[0] if isinstance(state, tuple) else state


def with_first_part(h, parts: int, rest=None):
    """A public state of ``parts`` parts for models that set or read h only: ``h`` first and
    zeros like it after, or, given ``rest`` (a public state, e.g. a gradient), ``rest`` with
    ``h`` added to its first part."""
    if rest is not None:
        rest_parts = rest if isinstance(rest, tuple) else (rest,)
        return public_state((h + rest_parts[0], *rest_parts[1:]))
    return public_state((h, *(np.zeros_like(h) for _ in range(parts - 1))))


def sizes(owner: str, **values) -> None:
    """TypeError/ValueError unless every size is a positive int."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise UserTypeError(f"{owner}: {name} must be an int, got {type(value).__name__}")
        if value < 1:
            raise UserError(f"{owner}: {name} must be at least 1, got {_shown(value)}")


def probability(owner: str, **values) -> None:
    """TypeError/ValueError unless every value is a number in [0, 1] (a dropout rate; 1 drops
    every unit, as PyTorch allows). NaN is refused."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UserTypeError(f"{owner}: {name} must be a number in [0, 1], got {_shown(value)}")
        if not 0 <= value <= 1:
            raise UserError(f"{owner}: {name} must be in [0, 1], got {_shown(value)}")


def token_ids(owner: str, vocab_size: int, **values) -> None:
    """ValueError unless every value is an int id in [0, vocab_size)."""
    for name, value in values.items():
        whole = isinstance(value, int | np.integer) and not isinstance(value, bool)
        if not (whole and 0 <= value < vocab_size):
            raise UserError(
                f"{owner}: {name} must be an id in [0, {vocab_size}), got {_shown(value)}"
            )


def choice(owner: str, name: str, value, choices) -> None:
    """ValueError unless ``value`` is one of the strings ``choices``."""
    if not (isinstance(value, str) and value in choices):
        raise UserError(f"{owner}: {name}={_shown(value)} is not one of {list(choices)}")


def flags(owner: str, **values) -> None:
    """TypeError unless every flag is a bool."""
    for name, value in values.items():
        if not isinstance(value, bool | np.bool_):
            raise UserTypeError(f"{owner}: {name} must be True or False, got {_shown(value)}")


def float_dtype(owner: str, dtype) -> np.dtype:
    """float32 or float64 as a NumPy dtype; ValueError for anything else."""
    try:
        dtype = np.dtype(dtype)
    except (TypeError, ValueError):  # ValueError: a string such as "(99999999999,)f8"
        dtype = None
    if dtype not in (np.float32, np.float64):
        raise UserError(
            f"{owner}: dtype must be float32 or float64, got {str(dtype)[:40]}; pick one of them"
        )
    return dtype


def generator(owner: str, seed) -> np.random.Generator:
    """A Generator from a seed (an int >= 0, or None for fresh entropy)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
        raise UserTypeError(f"{owner}: seed must be an int or None, got {_shown(seed)}")
    if seed is not None and seed < 0:
        raise UserError(f"{owner}: seed must be a whole number >= 0, got {_shown(seed)}")
    return np.random.default_rng(seed)


def forget_bias(owner: str, value, cell, bias: bool) -> None:
    """UserError unless ``value`` is None or a number in [-1e6, 1e6] given to a cell with a
    forget gate and biases (a larger one only saturates the gate, and may not fit the
    parameters' dtype)."""
    if value is None:
        return
    if cell.forget_gate is None:
        raise UserError(
            f"{owner}: forget_bias is for LSTM and other cells with a forget gate; the "
            f"{cell.name} cell has none; leave it out"
        )
    if isinstance(value, bool) or not isinstance(value, int | float) or not abs(value) <= 1e6:
        raise UserError(
            f"{owner}: forget_bias must be a finite number in [-1e6, 1e6], got {_shown(value)}"
        )
    if not bias:
        raise UserError(f"{owner}: forget_bias needs bias=True; drop one of them")
