"""Tables from CSV files, read with the ``csv`` module: named columns of text, numbers on request.

The first row names the columns. Rows are counted from 1 after it ("row 1" is the first row of
data), in files and in error messages alike.

Missing values: a cell that is empty (or blank), or one of ``NA``, ``N/A``, ``NaN``, ``null``,
``None`` (any case), is missing. rnnkit refuses missing values, with an error naming the row and
the column: fill or drop those rows before training (no silent imputation).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

from rnnkit.data.identity import read_user_file
from rnnkit.errors import UserError
from rnnkit.io.files import utf8_text

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none"})


def is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING


@dataclass
class Table:
    """Columns of text cells: ``rows[i][j]`` is row i + 1, column ``columns[j]``."""

    columns: list[str]
    rows: list[list[str]]
    source: str  # where the table came from, for messages
    identity: dict | None = None  # what a model remembers of the file (rnnkit.data.identity)

    def index(self, name: str, option: str = "column") -> int:
        """The position of column ``name``; ValueError listing the columns that exist."""
        if name not in self.columns:
            raise UserError(
                f"{option} {name!r} is not a column of {self.source}; its columns are "
                f"{', '.join(repr(column) for column in self.columns)}"
            )
        return self.columns.index(name)

    def text(self, name: str, option: str = "column") -> list[str]:
        """The cells of column ``name``; ValueError at the first missing one."""
        position = self.index(name, option)
        cells = [row[position] for row in self.rows]
        for number, cell in enumerate(cells, start=1):
            if is_missing(cell):
                raise UserError(self._missing(number, name))
        return cells

    def numbers(self, name: str, option: str = "column") -> np.ndarray:
        """Column ``name`` as float64 (N,); ValueError naming the row of a missing cell or of
        a cell that is not a number."""
        values = np.empty(len(self.rows))
        for number, cell in enumerate(self.text(name, option), start=1):
            try:
                values[number - 1] = float(cell)
            except ValueError:
                raise UserError(
                    f"row {number} of {self.source}, column {name!r}: {cell!r} is not a number; "
                    "fix the cell or choose numeric columns"
                ) from None
            if not np.isfinite(values[number - 1]):
                raise UserError(
                    f"row {number} of {self.source}, column {name!r}: {cell!r} is not a finite "
                    "number; fix the cell or drop the row"
                )
        return values

    def numeric_columns(self) -> list[str]:
        """The columns whose first cell is a number (their other cells are checked when read)."""
        return [
            name for name, cell in zip(self.columns, self.rows[0], strict=True) if _number(cell)
        ]

    def _missing(self, number: int, name: str) -> str:
        return (
            f"row {number} of {self.source}, column {name!r}: the value is missing; rnnkit does "
            "not fill in missing values: fill or drop the rows with gaps first"
        )


def parse_csv(text: str, source: str) -> Table:
    """The table in CSV ``text``; ValueError for no header, no rows or ragged rows."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        rows = list(reader)
    except csv.Error as error:
        raise UserError(f"{source} is not valid CSV (line {reader.line_num}: {error})") from None
    if not header or not any(cell.strip() for cell in header):
        raise UserError(f"{source} has no header row; give a CSV whose first row names columns")
    columns = [cell.strip() for cell in header]
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        raise UserError(f"{source} names a column more than once: {repeated}; rename them")
    rows = [row for row in rows if any(cell.strip() for cell in row)]  # blank lines
    if not rows:
        raise UserError(f"{source} has a header but no rows of data; give a file with data")
    for number, row in enumerate(rows, start=1):
        if len(row) != len(columns):
            raise UserError(
                f"row {number} of {source} has {len(row)} cells, but the header names "
                f"{len(columns)} columns; fix the row (quote cells that hold commas)"
            )
    return Table(columns, rows, source)


def read_csv(name, option: str = "--csv") -> Table:
    """The table in the UTF-8 CSV file ``name``, with its identity (kind "csv", the file's base
    name and sha256); one-line errors name ``option`` and the fix."""
    content, identity = read_user_file(name, option, "a path to a CSV file", "csv")
    text = utf8_text(content, option, name, "utf-8-sig")
    if not text.strip():
        raise UserError(f"{option} {name} is empty; give a CSV file with a header and rows")
    table = parse_csv(text, str(name))
    table.identity = identity
    return table


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return not is_missing(cell)
