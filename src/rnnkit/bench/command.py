"""``rnnkit bench``: rnnkit's speed against PyTorch's CPU RNNs, side by side (``rnnkit.bench``)."""

from __future__ import annotations

import argparse

from rnnkit import cells
from rnnkit._arguments import positive_int
from rnnkit._command import Command
from rnnkit.bench.speed import run


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--quick", action="store_true", help="the two smallest shapes only")
    add("--repeats", type=positive_int, default=7, help="timed runs per case")
    add("--json", metavar="FILE", help="also write the results to FILE")
    add("--cell", action="append", choices=cells.names(), dest="cells",
        help="a registered cell to time (repeatable; default: those PyTorch also has)")  # fmt: skip


def _run(args: argparse.Namespace) -> None:
    run(args.repeats, args.quick, args.json, args.cells)


BENCH = Command(
    "bench", "speed against PyTorch's CPU RNNs, side by side (needs torch)", _add_arguments, _run
)
