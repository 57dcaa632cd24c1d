"""Inverted dropout, per element or locked across time (variational dropout)."""

from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError
from rnnkit.nn import _checks
from rnnkit.nn.module import Module, _to_numpy


def inverted_mask(rng: np.random.Generator, shape: tuple, p: float, dtype) -> np.ndarray:
    """A dropout mask of ``shape`` and ``dtype``: each entry 0 with probability ``p``, else
    1/(1-p); all zeros when ``p`` is 1 (every unit dropped, no division by zero)."""
    if p == 1.0:
        return np.zeros(shape, dtype=dtype)
    keep = rng.random(shape) >= p
    return (keep / (1.0 - p)).astype(dtype)


class Dropout(Module):
    """Zero each unit with probability ``p`` in training and scale the kept ones by 1/(1-p), so
    the expected value of every unit is unchanged and inference is the identity.

    With ``locked=True`` (variational or locked dropout, Gal & Ghahramani 2016) the input must be
    time-major (T, B, F): one mask (1, B, F) per forward, shared by all T steps, so a sequence
    loses the same units at every step. No parameters (``dtype`` is None); the input's dtype is
    kept. ``p`` may be changed after construction; it is checked on assignment, and ``p=1``
    gives zeros and a zero gradient.
    """

    def __init__(self, p: float = 0.5, *, locked: bool = False, seed: int | None = None) -> None:
        super().__init__()
        self.p = p  # the probability of dropping a unit, checked by the setter
        self.locked = bool(locked)
        self.rng = np.random.default_rng(seed)

    @property
    def p(self) -> float:
        """The probability of dropping a unit in training, in [0, 1]."""
        return self._p

    @p.setter
    def p(self, value: float) -> None:
        _checks.probability("Dropout", p=value)
        self._p = float(value)

    def config(self) -> dict:
        return {"p": self.p, "locked": self.locked}

    def __call__(self, x):
        """Inference: the identity (``x`` itself)."""
        return x

    def forward(self, x):
        """Training path: ``(y, backward)``.

        Args:
            x: floating-point array of any shape; (T, B, F) when ``locked``.
        Returns:
            y: x * mask, same shape, where mask is 0 or 1/(1-p) (all 0 when p = 1);
            backward(dy) -> dx = dy * mask (the same mask).
        """
        x = _to_numpy(x)
        x = _checks.float_array(x, "x", x.dtype)
        if self.locked and x.ndim != 3:
            raise UserError(
                f"locked Dropout needs time-major input (T, B, F), got shape {x.shape}; "
                "use locked=False for other shapes, or transpose batch-first data"
            )
        mask_shape = (1, *x.shape[1:]) if self.locked else x.shape  # locked: (1, B, F)
        mask = inverted_mask(self.rng, mask_shape, self.p, x.dtype)
        y = x * mask

        def backward(dy) -> np.ndarray:
            dy = _checks.float_array(dy, "dy", x.dtype)
            _checks.check_shape(dy, y.shape, "dy", "the output's shape", "pass d(loss)/d(y)")
            return dy * mask

        return y, backward

    def __repr__(self) -> str:
        return f"Dropout(p={self.p}, locked={self.locked})"
