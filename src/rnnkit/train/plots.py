"""Pictures of a run: the loss curve from a metrics log. Needs matplotlib (``rnnkit[plot]``)."""

from __future__ import annotations

import json
from pathlib import Path


def read_metrics(path: Path) -> list[dict]:
    """The records of a ``metrics.jsonl`` log (a half-written last line is skipped)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def plot_history(metrics_path: Path, png_path: Path) -> bool:
    """Draw training loss per step and validation metrics to ``png_path``.

    Returns False (and draws nothing) when matplotlib is not installed.
    """
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
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return True
