"""Pictures of a run: the loss curve from a metrics log, and what every picture shares (the
title wrapped to fit, the atomic write). Needs matplotlib (``rnnkit[plot]``)."""

from __future__ import annotations

import io
import json
import textwrap
from itertools import pairwise
from pathlib import Path

from rnnkit.errors import UserError
from rnnkit.io.files import atomic_write_bytes

TRAINING_LOSS = "loss"  # the training loss's name in the step and epoch records of metrics.jsonl
EPOCH_LOSS = "training loss (mean of each epoch)"  # drawn at the epoch's middle step
TITLE_SIZE = 11  # points


def pyplot():
    """matplotlib's pyplot drawing off screen (Agg), or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def read_metrics(path: Path) -> list[dict]:
    """The records of a ``metrics.jsonl`` log (a half-written last line is skipped)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def add_title(figure, text: str) -> None:
    """Give ``figure`` the title ``text``, its lines wrapped at spaces to the figure's width
    (measured as drawn, so no part falls outside the picture), and make the figure taller by
    the title's height so that the plots keep their size. The figure should use the
    constrained layout, which keeps the plots below the title. An empty ``text``: no title."""
    if not text:
        return
    renderer = figure.canvas.get_renderer()
    room = 0.96 * figure.bbox.width  # pixels
    probe = figure.text(0, 0, "", fontsize=TITLE_SIZE)
    columns = max(10, int(room / (0.5 * TITLE_SIZE * figure.dpi / 72)))  # 0.5 em a character
    while True:
        lines = [part for line in text.split("\n") for part in textwrap.wrap(line, columns) or [""]]
        probe.set_text("\n".join(lines))
        if probe.get_window_extent(renderer).width <= room or columns == 10:
            break
        columns = max(10, columns - 3)
    probe.remove()
    width, height = figure.get_size_inches()
    figure.set_size_inches(width, height + len(lines) * 1.3 * TITLE_SIZE / 72)
    figure.suptitle("\n".join(lines), fontsize=TITLE_SIZE)


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


def panels(names: list[str], units: dict[str, str]) -> list[tuple[str, list[str]]]:
    """The quantities ``names`` grouped into panels, in the order of their first appearance:
    the quantities of one unit (``units``: name -> unit) share a panel labelled with the unit;
    a quantity of unknown unit has a panel of its own, labelled with its name alone.
    Returns ``[(y-axis label, names), ...]``."""
    grouped: dict[str, list[str]] = {}
    for name in names:
        grouped.setdefault(units.get(name) or name, []).append(name)
    return list(grouped.items())


def history_figure(records: list[dict], units: dict[str, str], title: str):
    """A figure of the training loss (each step, and its mean over each epoch) and each
    validation metric of ``records`` (a metrics log), one panel per unit (see ``panels``) over a
    shared step axis."""
    plt = pyplot()
    curves = {}  # name -> (steps, values, line style, legend label)
    steps = [r for r in records if r.get("kind") == "step"]
    if steps:
        points = ([r["step"] for r in steps], [r[TRAINING_LOSS] for r in steps])
        curves[TRAINING_LOSS] = (*points, "-", "training loss (each step)")
    epochs = [r for r in records if r.get("kind") == "epoch"]
    if epochs:
        ends = [0, *(r["step"] for r in epochs)]  # the step each epoch ended at
        middles = [(start + end) / 2 for start, end in pairwise(ends)]
        curves[EPOCH_LOSS] = (middles, [r[TRAINING_LOSS] for r in epochs], "s-", EPOCH_LOSS)
        units = {**units, EPOCH_LOSS: units.get(TRAINING_LOSS) or TRAINING_LOSS}  # one panel
    validations = [r for r in records if r.get("kind") == "validation"]
    for name in sorted({key for r in validations for key in r} - {"kind", "step", "epoch"}):
        points = [(r["step"], r[name]) for r in validations if name in r]
        curves[name] = (*zip(*points, strict=True), "o-", name)
    groups = panels(list(curves), units)
    figure, axes = plt.subplots(
        max(1, len(groups)), figsize=(7, 0.6 + 2.2 * max(1, len(groups))), sharex=True,
        squeeze=False, layout="constrained",
    )  # fmt: skip
    for panel, (label, names) in zip(axes[:, 0], groups, strict=False):
        for name in names:
            x, y, style, legend = curves[name]
            panel.plot(x, y, style, lw=0.8 if style == "-" else 1.5, ms=4, label=legend)
        panel.set_ylabel("\n".join(textwrap.wrap(label, 26)))  # fits the panel's height
        panel.grid(alpha=0.3)
        panel.legend(fontsize="small")
    axes[-1, 0].set_xlabel("step")
    add_title(figure, title)
    return figure


def plot_history(metrics_path: Path, png_path: Path, units=None, title: str = "") -> bool:
    """Draw the training loss per step and the validation metrics of the log at
    ``metrics_path`` to ``png_path`` under ``title``, one panel per unit (``units``: the unit
    of each quantity by its name in the log; see ``panels``).

    Returns False (and draws nothing) when matplotlib is not installed or there is no log (a
    run resumed at its last step, from a folder without one).
    """
    if not Path(metrics_path).is_file() or pyplot() is None:
        return False
    figure = history_figure(read_metrics(metrics_path), units or {}, title)
    save_figure(figure, png_path)
    return True
