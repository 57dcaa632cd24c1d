"""Initialisation schemes for recurrent weights, chosen by name; each parameter is filled by its
kind, as its cell declares it (``rnnkit.cells.Cell.parameters``).

- ``"uniform"`` (default, PyTorch's): every weight, bias and projection from U(-1/sqrt(H),
  1/sqrt(H)).
- ``"xavier_orthogonal"``: each gate's block of ``weight_ih`` (and a projection) Xavier/Glorot-
  uniform, each gate's block of ``weight_hh`` a random orthogonal matrix, biases zero; a cell's
  forget gate starts with bias 1.0 (Jozefowicz et al. 2015) unless ``forget_bias`` says
  otherwise.
- ``"identity"`` (IRNN, Le et al. 2015, for relu RNNs): ``weight_hh`` the identity, ``weight_ih``
  from N(0, 0.001^2), biases zero. Only for one-gate cells with a square ``weight_hh`` (the
  Elman RNN).

Under every scheme a ``gain`` (a normalisation's scale) starts at 1 and a ``shift`` at 0.
"""

from __future__ import annotations

import math

import numpy as np

from rnnkit.errors import UserError
from rnnkit.io._schema import _shown

SCHEMES = ("uniform", "xavier_orthogonal", "identity")


def check_scheme(scheme: str, owner: str, cell) -> None:
    """A one-line UserError for an unknown scheme or one that does not fit ``cell``."""
    if not (isinstance(scheme, str) and scheme in SCHEMES):
        raise UserError(f"init={_shown(scheme)} is not a known scheme; use one of {list(SCHEMES)}")
    if scheme == "identity" and not (cell.gates == 1 and len(cell.state) == 1):
        raise UserError(
            f"init='identity' (IRNN) is for the Elman RNN, not {owner} ({cell.name}); "
            "use 'uniform' or 'xavier_orthogonal'"
        )


def weight_count(shapes: dict, bias: bool) -> int:
    """The number of values ``initial_weights`` returns for ``shapes`` (see there)."""
    return sum(math.prod(shape) for shape, kind in shapes.values() if bias or kind != "bias")


def orthogonal(rows: int, columns: int, rng: np.random.Generator) -> np.ndarray:
    """A random (rows, columns) matrix with orthonormal rows or columns (whichever are fewer),
    uniform over such matrices."""
    q, r = np.linalg.qr(rng.standard_normal((max(rows, columns), min(rows, columns))))
    q = q * np.sign(np.diag(r))  # fix the signs so the distribution is uniform
    return q if rows >= columns else q.T


def initial_weights(
    scheme: str,
    shapes: dict,
    cell,
    hidden_size: int,
    bias: bool,
    rng: np.random.Generator,
    dtype: np.dtype,
    forget_bias: float | None = None,
) -> dict[str, np.ndarray]:
    """Weights of one layer and direction: {role: array} for ``shapes`` ({role: (shape, kind)},
    from ``cell.parameters``), filled in that order; the biases dropped unless ``bias``.

    ``forget_bias`` (cells with a forget gate) sets ``bias_ih``'s forget block and zeroes
    ``bias_hh``'s.
    """
    bound = 1.0 / np.sqrt(hidden_size)
    weights = {}
    for role, (shape, kind) in shapes.items():
        weights[role] = _initial(scheme, kind, shape, cell.gates, bound, rng)
    if scheme == "xavier_orthogonal" and cell.forget_gate is not None and forget_bias is None:
        forget_bias = 1.0
    if forget_bias is not None:
        forget = slice(cell.forget_gate * hidden_size, (cell.forget_gate + 1) * hidden_size)
        weights["bias_ih"][forget] = forget_bias
        weights["bias_hh"][forget] = 0.0
    return {
        role: value.astype(dtype)
        for role, value in weights.items()
        if bias or shapes[role][1] != "bias"
    }


def _initial(scheme, kind, shape, gates, bound, rng) -> np.ndarray:
    """One parameter of ``kind`` and ``shape`` under ``scheme`` (see the module docstring)."""
    if kind == "gain":
        return np.ones(shape)
    if kind == "shift":
        return np.zeros(shape)
    if scheme == "uniform":
        return rng.uniform(-bound, bound, shape)
    if kind == "bias":
        return np.zeros(shape)
    if scheme == "identity":
        return np.eye(*shape) if kind == "recurrent" else rng.normal(0.0, 0.001, shape)
    if kind == "recurrent":  # one orthogonal block per gate
        rows, columns = shape[0] // gates, shape[1]
        return np.concatenate([orthogonal(rows, columns, rng) for _ in range(gates)])
    fan_out = shape[0] // gates if kind == "input" else shape[0]  # per gate block
    xavier = np.sqrt(6.0 / (fan_out + shape[1]))  # input and projection weights
    return rng.uniform(-xavier, xavier, shape)
