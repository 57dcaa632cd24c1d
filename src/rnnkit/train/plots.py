"""Pictures of a run: the loss curve from a metrics log. Needs matplotlib (``rnnkit[plot]``)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rnnkit.errors import UserError
from rnnkit.io.files import atomic_write_bytes


def read_metrics(path: Path) -> list[dict]:
    """The records of a ``metrics.jsonl`` log (a half-written last line is skipped)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def save_figure(figure, path) -> None:
    """Write a matplotlib ``figure`` to ``path`` atomically, in the format its suffix names (PNG
    without one), and close it. It is drawn in memory first: a kill or a full disk leaves the
    old file, never half a picture."""
    import matplotlib.pyplot as plt

    image = io.BytesIO()
    try:
        figure.savefig(image, format=Path(path).suffix[1:].lower() or "png", dpi=100)
    except ValueError as error:  # a suffix matplotlib cannot write
        raise UserError(f"cannot draw {path}: {error}; give a .png file") from None
    finally:
        plt.close(figure)
    atomic_write_bytes(path, image.getvalue())


def plot_history(metrics_path: Path, png_path: Path) -> bool:
    """Draw training loss per step and validation metrics to ``png_path``.

    Returns False (and draws nothing) when matplotlib is not installed or there is no log (a
    run resumed at its last step, from a folder without one).
    """
    if not Path(metrics_path).is_file():
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    records = read_metrics(metrics_path)
    steps = [r for r in records if r["kind"] == "step"]
    validations = [r for r in records if r["kind"] == "validation"]
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.plot([r["step"] for r in steps], [r["loss"] for r in steps], lw=0.8, label="training loss")
    for name in sorted({k for r in validations for k in r} - {"kind", "step", "epoch"}):
        points = [(r["step"], r[name]) for r in validations if name in r]
        axes.plot(*zip(*points, strict=True), "o-", label=name)
    axes.set_xlabel("step")
    axes.set_ylabel("loss (nats per token)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    save_figure(figure, png_path)
    return True
