"""Choose the forecaster's settings on the validation split alone, then score the choice on test.

Every setting of a small grid (cell x window x hidden size x training loss; the other options,
such as the ensemble's ``members``, at their defaults) trains on the default data (Seattle
weather, next-day ``temp_max``, chronological 80/10/10 split) and is scored by its best
validation MAE, next to persistence's MAE on the same validation days.
The table is sorted by validation MAE; only the first row's test figures are printed, so that the
choice never sees the test years.

    python benchmarks/forecast_selection.py                 # 36 settings, about 10 minutes
    python benchmarks/forecast_selection.py --epochs 2 --cells gru --windows 7 --hiddens 8
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from dataclasses import replace

import numpy as np

from rnnkit.data.series import read_table
from rnnkit.tasks import pipeline
from rnnkit.tasks.forecasting import (
    TASK,
    ForecastOptions,
    layout_for,
    persistence_forecast,
    split_starts,
)


def persistence_mae(options: ForecastOptions) -> float:
    """MAE of "tomorrow = today" on the validation days of ``options``' data and split."""
    table = read_table(options.csv)
    layout = layout_for(options, table)
    series = layout.series(table)
    _, val, _ = split_starts(series, layout, options.val_fraction, options.test_fraction)
    ahead = val[:, None] + np.arange(layout.horizon)[None, :]  # (M, horizon) steps ahead
    persistence = persistence_forecast(series.target, val, layout.horizon)
    return float(np.abs(series.target[ahead] - persistence).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="gru,lstm")
    parser.add_argument("--windows", default="7,14,28")
    parser.add_argument("--hiddens", default="16,32,64")
    parser.add_argument("--losses", default="mse,mae")
    parser.add_argument("--epochs", type=int, default=ForecastOptions.epochs)
    parser.add_argument("--members", type=int, default=ForecastOptions.members)
    args = parser.parse_args()
    base = ForecastOptions(epochs=args.epochs, members=args.members)
    baseline = persistence_mae(base)
    grid = itertools.product(
        args.cells.split(","),
        [int(value) for value in args.windows.split(",")],
        [int(value) for value in args.hiddens.split(",")],
        args.losses.split(","),
    )
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for index, setting in enumerate(grid):
            cell, window, hidden, loss = setting
            options = replace(
                base, cell=cell, window=window, hidden=hidden, loss=loss, out=f"{folder}/{index}"
            )
            summary = pipeline.train(TASK, options, say=lambda *_: None)
            rows.append((summary["best"]["val_mae"], setting, summary["test"]))
            print(
                f"{cell} window {window} hidden {hidden} loss {loss}: val MAE {rows[-1][0]:.3f}",
                flush=True,
            )
    rows.sort(key=lambda row: row[0])
    print(f"\nvalidation persistence MAE {baseline:.3f} °C\n")
    print("| cell | window | hidden | loss | val MAE (°C) | below persistence |")
    print("|---|---|---|---|---|---|")
    for val_mae, setting, _ in rows:
        cells = " | ".join(str(value) for value in setting)
        print(f"| {cells} | {val_mae:.3f} | {1 - val_mae / baseline:.1%} |")
    val_mae, (cell, window, hidden, loss), test = rows[0]
    print(
        f"\nchosen on validation: {cell}, window {window}, hidden {hidden}, loss {loss}; "
        f"its test MAE {test['mae']:.3f} °C against persistence {test['baseline_mae']:.3f} °C "
        f"({1 - test['mae'] / test['baseline_mae']:.1%} below)"
    )


if __name__ == "__main__":
    main()
