"""CSV tables read with the csv module: columns, numbers, missing values and malformed files."""

import numpy as np
import pytest

from rnnkit.data.tables import is_missing, parse_csv, read_csv


def test_columns_numbers_and_quoted_cells(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes('\ufeffname,score,note\n"Smith, J",1.5,"two\nlines"\nLee,-2e1,x\n'.encode())
    table = read_csv(path)  # a byte-order mark is dropped
    assert table.columns == ["name", "score", "note"]
    assert table.text("name") == ["Smith, J", "Lee"]
    np.testing.assert_array_equal(table.numbers("score"), [1.5, -20.0])
    assert table.text("note")[0] == "two\nlines"
    assert table.numeric_columns() == ["score"]


@pytest.mark.parametrize("cell", ["", "  ", "NA", "n/a", "NaN", "null", "None"])
def test_missing_values_are_refused_with_row_and_column(cell):
    assert is_missing(cell)
    table = parse_csv(f"a,b\n1,2\n3,{cell}\n", "t.csv")
    with pytest.raises(ValueError, match="row 2 of t.csv, column 'b': the value is missing"):
        table.numbers("b")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "has no header row"),
        ("a,b\n", "has a header but no rows of data"),
        ("a,a\n1,2\n", "names a column more than once: ['a']"),
        ("a,b\n1,2\n3\n", "row 2 of t.csv has 1 cells, but the header names 2 columns"),
        ("a,b\n1,inf\n", "column 'b': 'inf' is not a finite number"),
    ],
)
def test_malformed_tables_are_refused(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_csv(text, "t.csv").numbers("b")


def test_unknown_column_lists_the_columns():
    table = parse_csv("date,temp\n2020-01-01,3\n", "t.csv")
    with pytest.raises(ValueError, match="--target 'tmp' is not a column of t.csv; its columns"):
        table.numbers("tmp", "--target")
