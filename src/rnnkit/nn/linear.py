"""A fully connected layer on the last axis: y = x @ W.T + b, for input of any rank."""

from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError
from rnnkit.nn import _checks
from rnnkit.nn.module import Module, amount, reserve


class Linear(Module):
    """``torch.nn.Linear``: parameters ``weight`` (out_features, in_features) and ``bias``
    (out_features,), both drawn from U(-1/sqrt(in_features), 1/sqrt(in_features)) as PyTorch does.

    Input (..., in_features) -> output (..., out_features); all leading axes (time, batch, ...)
    go through one matrix product.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        dtype=np.float32,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        _checks.sizes("Linear", in_features=in_features, out_features=out_features)
        _checks.flags("Linear", bias=bias)
        dtype = _checks.float_dtype("Linear", dtype)
        count = out_features * (in_features + (1 if bias else 0))
        reserve(count, dtype, f"Linear({amount(in_features)}, {amount(out_features)})")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.bias = bool(bias)
        rng = _checks.generator("Linear", seed)
        bound = 1.0 / np.sqrt(self.in_features)
        weight = rng.uniform(-bound, bound, (self.out_features, self.in_features))
        self._add_param("weight", weight.astype(dtype))
        if self.bias:
            self._add_param("bias", rng.uniform(-bound, bound, self.out_features).astype(dtype))

    def config(self) -> dict:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias,
            "dtype": self.dtype.name,
        }

    def __call__(self, x) -> np.ndarray:
        """Inference: y (..., out_features) for x (..., in_features)."""
        y, _ = self.forward(x)
        return y

    def forward(self, x):
        """Training path: ``(y, backward)``.

        Args:
            x: (..., in_features), floating point.
        Returns:
            y: (..., out_features);
            backward(dy) -> dx: dy (..., out_features) to dx (..., in_features); the gradients of
                ``weight`` and ``bias`` accumulate in ``self.grads``.
        """
        x = self._checked_input(x)
        weight, bias = self.params["weight"], self.params.get("bias")
        x_rows = x.reshape(-1, self.in_features)  # (N, in): N = product of the leading axes
        y_rows = x_rows @ weight.T  # (N, out)
        if bias is not None:
            y_rows += bias
        y = y_rows.reshape(*x.shape[:-1], self.out_features)  # (..., out)

        def backward(dy) -> np.ndarray:
            dy = _checks.float_array(dy, "dy", self.dtype)
            _checks.check_shape(dy, y.shape, "dy", "the output's shape", "pass d(loss)/d(y)")
            dy_rows = dy.reshape(-1, self.out_features)  # (N, out)
            self.grads["weight"] += dy_rows.T @ x_rows  # (out, in): one product over all rows
            if bias is not None:
                self.grads["bias"] += dy_rows.sum(axis=0)
            return (dy_rows @ weight).reshape(x.shape)  # (N, in) -> (..., in)

        return y, backward

    def _checked_input(self, x) -> np.ndarray:
        x = _checks.float_array(x, "x", self.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise UserError(
                f"x must have shape (..., in_features) = (..., {self.in_features}), got {x.shape}; "
                "build the layer with the data's feature count or fix the data"
            )
        return x

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias})"
