"""Reading a trained model file for the commands that use one (evaluate, predict)."""

from __future__ import annotations

from pathlib import Path

from rnnkit.errors import UserError
from rnnkit.io.files import regular_file


def read_model(path) -> tuple[object, object]:
    """``(model, extra)`` from the file at ``path``; one-line errors for a missing file, a
    directory or a file that is not an rnnkit model."""
    from rnnkit.io.models import load_with_extra

    return load_with_extra(model_file(path))


def model_file(name) -> Path:
    """``name`` as a Path when it is a regular file; one-line errors name what it is instead."""
    return regular_file(name, "the model", "a model.safetensors written by 'rnnkit train'")


def check_resumable(out: Path, extra: dict, keys: tuple[str, ...]) -> None:
    """ValueError unless the newest checkpoint in ``out`` was trained with the same ``extra``
    entries ``keys`` (data, classes, scaling...): resuming on other data would silently give the
    weights other meanings. Data are the same when their identities are, whatever the file's
    name (see ``rnnkit.data.identity``)."""
    from rnnkit.train.checkpoints import list_checkpoints, read_checkpoint

    found = list_checkpoints(Path(out) / "checkpoints")
    if not found:
        return
    _, state = read_checkpoint(found[-1])
    saved = state.get("extra")
    saved = saved if isinstance(saved, dict) else {}
    changed = [key for key in keys if _compared(key, saved.get(key)) != _compared(key, extra[key])]
    if changed:
        raise UserError(
            f"{found[-1]} was trained with other {' and '.join(changed)}; resume with the same "
            "data and options, or train afresh into another --out"
        )


def _compared(key: str, value):
    """``value`` as compared on resuming: a data identity without its file's name."""
    if key == "data" and isinstance(value, dict):
        return {name: part for name, part in value.items() if name != "file"}
    return value
