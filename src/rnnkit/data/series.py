"""Multivariate time series from tables: one row per time step, in time order.

The inputs are the target's own past first, then the feature columns, then (with a date column
and ``calendar``) the sine and cosine of the day of the year, so a model can tell the season.
Without named features, every other column whose first value is a number is a feature. Dates
(``YYYY-MM-DD`` or ``YYYY/MM/DD``, a time after them ignored) must increase from row to row: the
file is never reordered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnkit.data.tables import Table, read_csv
from rnnkit.errors import UserError

CALENDAR_COLUMNS = ("day_of_year_sin", "day_of_year_cos")


@dataclass
class Series:
    """``inputs`` (N, F) float64 named by ``columns`` (the target first), ``target`` (N,) and
    ``times`` (N,) datetime64[D] (None without a date column)."""

    inputs: np.ndarray
    columns: list[str]
    target: np.ndarray
    times: np.ndarray | None
    description: str

    def __len__(self) -> int:
        return len(self.target)


def read_table(csv=None) -> Table:
    """The table of the CSV file ``csv`` the user gave, or (None) of the Seattle weather (from
    vega_datasets), with its identity (see ``rnnkit.data.identity``)."""
    if csv is None:
        from rnnkit.data.packaged import seattle_weather

        return seattle_weather()
    return read_csv(csv)


def feature_columns(table: Table, target: str, features, date_col: str | None) -> list[str]:
    """The named feature columns (checked to exist), or every other numeric column."""
    table.index(target, "--target")
    if date_col is not None:
        table.index(date_col, "--date-col")
    if features is None:
        return [name for name in table.numeric_columns() if name not in (target, date_col)]
    for name in features:
        table.index(name, "--features")
    return [name for name in features if name != target]


def parse_dates(table: Table, date_col: str) -> np.ndarray:
    """The date column as datetime64[D] (N,); ValueError naming a cell that is not a date or a
    date that does not come after the one before it."""
    dates = np.empty(len(table.rows), dtype="datetime64[D]")
    for number, cell in enumerate(table.text(date_col, "--date-col"), start=1):
        try:
            dates[number - 1] = np.datetime64(cell.strip()[:10].replace("/", "-"), "D")
        except ValueError:
            raise UserError(
                f"row {number} of {table.source}, column {date_col!r}: {cell!r} is not a date "
                "(YYYY-MM-DD); fix it, or leave out --date-col"
            ) from None
        if number > 1 and dates[number - 1] <= dates[number - 2]:
            raise UserError(
                f"row {number} of {table.source}: the date {cell!r} does not come after the "
                f"date of row {number - 1}; sort the file by date (it is never reordered)"
            )
    return dates


def day_of_year_features(dates: np.ndarray) -> np.ndarray:
    """(N, 2): sine and cosine of the position in the year, 2 pi (day of year - 1) / 365.25."""
    day = (dates - dates.astype("datetime64[Y]")).astype(np.float64)  # 0 on January 1
    angle = 2 * np.pi * day / 365.25
    return np.stack([np.sin(angle), np.cos(angle)], axis=1)


def read_series(
    table: Table, target: str, features: list[str], date_col: str | None, calendar: bool
) -> Series:
    """The series of ``table``: inputs [target, *features, (calendar)], checked cell by cell."""
    columns = [target, *features]
    inputs = np.stack([table.numbers(name, "column") for name in columns], axis=1)  # (N, F)
    times = parse_dates(table, date_col) if date_col is not None else None
    if calendar and times is not None:
        inputs = np.concatenate([inputs, day_of_year_features(times)], axis=1)  # (N, F + 2)
        columns += CALENDAR_COLUMNS
    return Series(inputs, columns, inputs[:, 0].copy(), times, table.source)
