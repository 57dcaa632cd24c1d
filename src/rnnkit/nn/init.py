"""Initialisation schemes for recurrent weights, chosen by name.

- ``"uniform"`` (default, PyTorch's): every weight and bias from U(-1/sqrt(H), 1/sqrt(H)).
- ``"xavier_orthogonal"``: each gate's block of ``weight_ih`` Xavier/Glorot-uniform, each gate's
  block of ``weight_hh`` a random orthogonal matrix, biases zero; an LSTM's forget gate starts
  with bias 1.0 (Jozefowicz et al. 2015) unless ``forget_bias`` says otherwise.
- ``"identity"`` (IRNN, Le et al. 2015, for relu RNNs): ``weight_hh`` the identity, ``weight_ih``
  from N(0, 0.001^2), biases zero. Only for the Elman RNN.
"""

from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError
from rnnkit.io._schema import _shown

SCHEMES = ("uniform", "xavier_orthogonal", "identity")


def check_scheme(scheme: str, cell_name: str) -> None:
    """Raise a one-line ValueError for an unknown scheme or one that does not fit the cell."""
    if not (isinstance(scheme, str) and scheme in SCHEMES):
        raise UserError(f"init={_shown(scheme)} is not a known scheme; use one of {list(SCHEMES)}")
    if scheme == "identity" and cell_name not in ("RNN", "RNNCell"):
        raise UserError(
            f"init='identity' (IRNN) is for the Elman RNN, not {cell_name}; "
            "use 'uniform' or 'xavier_orthogonal'"
        )


def weight_count(input_size: int, hidden_size: int, gates: int, bias: bool) -> int:
    """The number of values ``initial_weights`` returns for one layer and direction."""
    rows = gates * hidden_size
    return rows * (input_size + hidden_size + (2 if bias else 0))


def orthogonal(size: int, rng: np.random.Generator) -> np.ndarray:
    """A random (size, size) orthogonal matrix, uniform over the orthogonal group."""
    q, r = np.linalg.qr(rng.standard_normal((size, size)))
    return q * np.sign(np.diag(r))  # fix the signs so the distribution is uniform


def initial_weights(
    scheme: str,
    input_size: int,
    hidden_size: int,
    gates: int,
    bias: bool,
    rng: np.random.Generator,
    dtype: np.dtype,
    forget_bias: float | None = None,
) -> dict[str, np.ndarray]:
    """Weights of one layer and direction: ``weight_ih`` (G*H, I), ``weight_hh`` (G*H, H),
    ``bias_ih`` and ``bias_hh`` (G*H,) when ``bias``; G is the number of gates (1, 3 or 4).

    ``forget_bias`` (LSTM only) sets ``bias_ih``'s forget block and zeroes ``bias_hh``'s.
    """
    rows = gates * hidden_size
    if scheme == "uniform":
        bound = 1.0 / np.sqrt(hidden_size)
        weights = {
            "weight_ih": rng.uniform(-bound, bound, (rows, input_size)),
            "weight_hh": rng.uniform(-bound, bound, (rows, hidden_size)),
            "bias_ih": rng.uniform(-bound, bound, rows),
            "bias_hh": rng.uniform(-bound, bound, rows),
        }
    elif scheme == "xavier_orthogonal":
        bound = np.sqrt(6.0 / (input_size + hidden_size))
        weights = {
            "weight_ih": rng.uniform(-bound, bound, (rows, input_size)),
            "weight_hh": np.concatenate([orthogonal(hidden_size, rng) for _ in range(gates)]),
            "bias_ih": np.zeros(rows),
            "bias_hh": np.zeros(rows),
        }
        if gates == 4 and forget_bias is None:
            forget_bias = 1.0
    else:  # identity
        weights = {
            "weight_ih": rng.normal(0.0, 0.001, (rows, input_size)),
            "weight_hh": np.eye(hidden_size),
            "bias_ih": np.zeros(rows),
            "bias_hh": np.zeros(rows),
        }
    if forget_bias is not None:
        forget = slice(hidden_size, 2 * hidden_size)  # gate order i, f, g, o
        weights["bias_ih"][forget] = forget_bias
        weights["bias_hh"][forget] = 0.0
    if not bias:
        del weights["bias_ih"], weights["bias_hh"]
    return {name: value.astype(dtype) for name, value in weights.items()}
