"""The compiled back end against the reference loop, in one process, on the benchmark's grid.

For every registered cell and every shape (B, T, I, H) of ``rnnkit bench``'s
grid, it times inference and a training step (forward, a sum-of-outputs loss, backward) of the
same float32 layer on ``backend="compiled"`` and on ``backend="numpy"``, alternating call by
call, and prints medians and the ratio compiled / numpy (below 1: the compiled one is faster),
with the product path the compiled loops took. Meant to be run under forced CPU targets, e.g.
on a CPU without FMA, where the compiled loops must fall back to BLAS and stay no slower (the
full emulation, NumPy and OpenBLAS held to the same CPU: docs/performance.md):

    NUMBA_CPU_NAME=generic NUMBA_CACHE_DIR=/tmp/generic python benchmarks/backends.py
    RNNKIT_TILE=avx2 python benchmarks/backends.py --quick
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

import rnnkit
from rnnkit import cells
from rnnkit.backends import compiled
from rnnkit.bench.race import timed, warm_up
from rnnkit.bench.speed import SHAPES

BACKENDS = ("compiled", "numpy")  # timed in this order, call by call


def layer_functions(cell: str, shape: tuple, backend: str) -> dict:
    """``{"inference": f, "training": f}`` for a seeded layer of ``cell`` on ``backend``."""
    batch, steps, inputs, hidden = shape
    layer = rnnkit.Recurrent(cell, inputs, hidden, seed=0, backend=backend)
    x = np.random.default_rng(1).standard_normal((steps, batch, inputs), dtype=np.float32)

    def train():
        (output, _), backward = layer.forward(x)
        backward(np.ones_like(output))

    return {"inference": lambda: layer(x), "training": train}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the two smallest shapes only")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per case")
    parser.add_argument(
        "--cell",
        action="append",
        choices=cells.names(),
        help="time this cell (repeatable; default: all)",
    )
    args = parser.parse_args(argv)
    print(f"products: {compiled._fused.product_path()}")
    print("| cell | B,T,I,H | mode | compiled ms | numpy ms | ratio |")
    print("|---|---|---|---|---|---|")
    for cell in args.cell or cells.names():
        for shape in SHAPES[:2] if args.quick else SHAPES:
            runs = {backend: layer_functions(cell, shape, backend) for backend in BACKENDS}
            for mode in ("inference", "training"):
                times = {backend: [] for backend in runs}
                for functions in runs.values():
                    warm_up(functions[mode])
                for _ in range(args.repeats):
                    for backend, functions in runs.items():
                        times[backend].append(timed(functions[mode]))
                ours, theirs = (statistics.median(times[name]) * 1e3 for name in BACKENDS)
                size, ratio = ",".join(map(str, shape)), ours / theirs
                print(f"| {cell} | {size} | {mode} | {ours:.2f} | {theirs:.2f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
