"""Reading a trained model file for the commands that use one (evaluate, predict)."""

from __future__ import annotations

from pathlib import Path


def read_model(path) -> tuple[object, object]:
    """``(model, extra)`` from the file at ``path``; one-line errors for a missing file, a
    directory or a file that is not an rnnkit model."""
    from rnnkit.io.models import load_with_extra

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give the model.safetensors file in it")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file; give a model written by 'rnnkit train'")
    return load_with_extra(path)


def check_resumable(out: Path, extra: dict, keys: tuple[str, ...]) -> None:
    """ValueError unless the newest checkpoint in ``out`` was trained with the same ``extra``
    entries ``keys`` (data, classes, scaling...): resuming on other data would silently give the
    weights other meanings."""
    from rnnkit.train.checkpoints import list_checkpoints, read_checkpoint

    found = list_checkpoints(Path(out) / "checkpoints")
    if not found:
        return
    _, state = read_checkpoint(found[-1])
    saved = state.get("extra", {})
    changed = [key for key in keys if saved.get(key) != extra[key]]
    if changed:
        raise ValueError(
            f"{found[-1]} was trained with other {' and '.join(changed)}; resume with the same "
            "data and options, or train afresh into another --out"
        )
