"""Reading a trained model file for the commands that use one (evaluate, predict)."""

from __future__ import annotations

from pathlib import Path

from rnnkit.io.files import regular_file


def read_model(path) -> tuple[object, object]:
    """``(model, extra)`` from the file at ``path``; one-line errors for a missing file, a
    directory or a file that is not an rnnkit model."""
    from rnnkit.io.models import load_with_extra

    return load_with_extra(model_file(path))


def model_file(name) -> Path:
    """``name`` as a Path when it is a regular file; one-line errors name what it is instead."""
    return regular_file(name, "the model", "a model.safetensors written by 'rnnkit train'")
