"""Standardising numeric columns: (x - mean) / std, fitted on training data only and saved with
the model, so that new data is scaled as the training data was."""

from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError


class Standardizer:
    """Per-column ``mean`` and ``std`` (F,), float64; a constant column gets std 1."""

    def __init__(self, mean, std) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        if self.mean.ndim != 1 or self.mean.shape != self.std.shape or not (self.std > 0).all():
            raise UserError(
                "a Standardizer needs 1-D mean and std of the same length, std > 0; the saved "
                "scaling is damaged: re-train the model"
            )

    @classmethod
    def fit(cls, values: np.ndarray) -> Standardizer:
        """The scaling of ``values`` (N, F); use the training rows only."""
        std = values.std(axis=0)
        return cls(values.mean(axis=0), np.where(std > 0, std, 1.0))

    def transform(self, values: np.ndarray) -> np.ndarray:
        """(..., F) values in scaled units."""
        return (values - self.mean) / self.std

    def inverse(self, scaled: np.ndarray, column: int | None = None) -> np.ndarray:
        """Back to the original units: all columns (..., F), or only ``column`` for any shape."""
        if column is None:
            return scaled * self.std + self.mean
        return scaled * self.std[column] + self.mean[column]

    def to_json(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_fields(cls, fields, path: str, size: int) -> Standardizer:
        """The scaling of ``size`` columns saved by ``to_json`` at the dotted ``path`` of a model
        file's JSON, read through ``fields`` (an ``rnnkit.io._schema.Fields``): one-line errors
        for anything but ``size`` finite means and positive standard deviations."""
        mean = fields.get(f"{path}.mean", list, items=float, low=size, high=size)
        std = fields.get(f"{path}.std", list, items=float, low=size, high=size)
        if any(value <= 0 for value in std):
            fields.fail(f"{path}.std", "holds a value <= 0, which no standard deviation is")
        return cls(mean, std)
