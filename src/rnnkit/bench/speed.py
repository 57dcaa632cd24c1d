"""The grid of ``rnnkit bench`` (see ``rnnkit.bench``): the cases raced, the memory and start-up
measurements, the table printed and the JSON written."""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

from rnnkit import cells
from rnnkit.bench.race import STREAMING_STEPS, Race, timed
from rnnkit.errors import UserError

SHAPES = [(1, 100, 32, 32), (16, 50, 64, 64), (32, 100, 64, 128), (64, 100, 128, 256),
          (32, 200, 256, 512)]  # fmt: skip


def matmul_flops(cell: str, batch: int, steps: int, inputs: int, hidden: int, train: bool) -> float:
    """FLOPs of the matrix products of a registered ``cell``: input projection and recurrent
    product (x3 for training: forward, and the two gradient products of each)."""
    forward = 2 * steps * batch * cells.get(cell).gates * hidden * (inputs + hidden)
    return 3 * forward if train else forward


def sgemm_peak(size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a float32 (size x size) product: the best of ``repeats``."""
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    a @ a
    best = min(timed(lambda: a @ a) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def layer_case(race, cell, shape, repeats, layers=1, bidirectional=False) -> list[dict]:
    batch, steps, inputs, hidden = shape
    rows = []
    case = ("layer", cell, tuple(shape), layers, bidirectional)
    for mode, (times_ours, times_theirs) in race.times(case, repeats).items():
        flops = matmul_flops(cell, batch, steps, inputs, hidden, mode == "training")
        flops *= layers * (2 if bidirectional else 1)  # upper layers read H features: roughly
        label = cells.get(cell).torch_name or cell  # "LSTM", as PyTorch names it, if it does
        rows.append(
            _row(label, shape, mode, times_ours, times_theirs, flops, layers, bidirectional)
        )
    return rows


def streaming_case(race, repeats: int, hidden: int = 128, inputs: int = 32) -> dict:
    times = race.times(("streaming", inputs, hidden), repeats)["streaming step"]
    per_step = ([t / STREAMING_STEPS for t in part] for part in times)
    flops = matmul_flops("lstm", 1, 1, inputs, hidden, False)
    return _row("LSTMCell", (1, 1, inputs, hidden), "streaming step", *per_step, flops, 1, False)


def _row(cell, shape, mode, times_ours, times_theirs, flops, layers, bidirectional) -> dict:
    """One result; the torch entries and the ratio None when PyTorch has no such cell."""
    ours = statistics.median(times_ours)
    theirs = None if times_theirs is None else statistics.median(times_theirs)
    return {
        "cell": cell, "shape": list(shape), "mode": mode, "layers": layers,
        "bidirectional": bidirectional,
        "rnnkit_ms": ours * 1e3, "rnnkit_range_ms": _range_ms(times_ours),
        "torch_ms": None if theirs is None else theirs * 1e3,
        "torch_range_ms": None if theirs is None else _range_ms(times_theirs),
        "ratio": None if theirs is None else ours / theirs, "rnnkit_gflops": flops / ours / 1e9,
    }  # fmt: skip


def _range_ms(times: list[float]) -> list[float]:
    return [min(times) * 1e3, max(times) * 1e3]


def peak_memory_mb(library: str, cell: str, shape: tuple) -> float:
    """Memory (MB) a training step adds at its peak: the resident high-water mark during the
    step (reset just before it, Linux's /proc/self/clear_refs) less the resident size before it,
    in a fresh process. Without rnnkit's process settings, in both: with them the process keeps
    the warm-up step's memory, and the step would add next to nothing."""
    code = f"""
import numpy as np
def megabytes(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field)) / 1024
batch, steps, inputs, hidden = {tuple(shape)}
x = np.random.default_rng(1).standard_normal((steps, batch, inputs), dtype=np.float32)
if {library!r} == "rnnkit":
    import rnnkit
    layer = rnnkit.{cell}(inputs, hidden, seed=0)
    def step():
        (out, _), backward = layer.forward(x)
        backward(np.ones_like(out))
else:
    import torch
    layer = torch.nn.{cell}(inputs, hidden)
    def step():
        out, _ = layer(torch.from_numpy(x).requires_grad_(True))
        out.sum().backward()
step()  # warm-up: one-off allocations (thread pools, caches) are not the step's
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # reset the high-water mark
before = megabytes("VmRSS")
step()
print(megabytes("VmHWM") - before)
"""
    environment = {**os.environ, "RNNKIT_PROCESS_SETTINGS": "0"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environment
    )
    return float(result.stdout.strip())


FIRST_STEP = """
import time
import numpy as np
import rnnkit
layer = rnnkit.LSTM(8, 16, seed=0)
x = np.zeros((5, 2, 8), np.float32)
seconds = []
for _ in range(2):
    start = time.perf_counter()
    (out, _), backward = layer.forward(x)
    backward(np.ones_like(out))
    seconds.append(time.perf_counter() - start)
print(seconds[0] - seconds[1])
"""


def startup_seconds(runs: int = 5) -> dict:
    """Medians over ``runs`` fresh processes: ``help``, the wall time of ``rnnkit --help``;
    ``first_step``, how much longer a process's first LSTM training step takes than its second
    (importing numba and loading the compiled loops; a run before these warms the cache)."""
    help_command = [sys.executable, "-c", "from rnnkit.cli import main; main(['--help'])"]
    first_step = [sys.executable, "-c", FIRST_STEP]
    subprocess.run(first_step, capture_output=True, check=True)  # compiles if the cache is cold
    helps, firsts = [], []
    for _ in range(runs):
        helps.append(timed(lambda: subprocess.run(help_command, capture_output=True, check=True)))
        result = subprocess.run(first_step, capture_output=True, text=True, check=True)
        firsts.append(float(result.stdout.strip()))
    return {"help": statistics.median(helps), "first_step": statistics.median(firsts)}


def run(
    repeats: int = 7, quick: bool = False, json_path: str | None = None, cell_names=None
) -> dict:
    """Time the grid for ``cell_names`` (registered cells; None: those with a PyTorch twin),
    print the table, write the JSON to ``json_path`` (atomically) if given; returns the
    results. UserError when torch is not installed."""
    if cell_names is None:
        cell_names = [name for name in cells.names() if cells.get(name).torch_name]
    cell_names = [cells.get(name).name for name in cell_names]  # each checked
    try:
        import torch
    except ImportError:
        raise UserError(
            "the benchmark races PyTorch, which is not installed: pip install torch==2.13.0"
        ) from None
    if repeats < 1:
        raise UserError(f"repeats must be at least 1, got {repeats}")

    shapes = SHAPES[:2] if quick else SHAPES
    peak = sgemm_peak()
    rows = []
    with Race() as race:
        for cell in cell_names:
            for shape in shapes:
                rows += layer_case(race, cell, shape, repeats)
        rows += layer_case(race, "lstm", (32, 100, 64, 128), repeats, 2, bidirectional=True)
        rows.append(streaming_case(race, repeats))
    largest = shapes[-1]
    memory = {lib: peak_memory_mb(lib, "LSTM", largest) for lib in ("rnnkit", "torch")}
    startup = startup_seconds(repeats)
    print(f"threads: torch {torch.get_num_threads()}; sgemm peak {peak:.0f} GFLOP/s")
    print("| cell | B,T,I,H | mode | rnnkit ms | PyTorch ms | ratio | rnnkit GFLOP/s (% peak) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        name = row["cell"] + (" bi x2" if row["bidirectional"] else "")
        shape = ",".join(map(str, row["shape"]))
        theirs = "-" if row["torch_ms"] is None else f"{row['torch_ms']:.3f}"
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
        print(
            f"| {name} | {shape} | {row['mode']} | {row['rnnkit_ms']:.3f} | {theirs} "
            f"| {ratio} | {row['rnnkit_gflops']:.1f} "
            f"({100 * row['rnnkit_gflops'] / peak:.0f}%) |"
        )
    above = max(row["rnnkit_gflops"] for row in rows) / peak
    if above > 1:
        print(
            f"rnnkit bench: warning: a case ran at {100 * above:.0f}% of the sgemm peak, so the "
            "peak was measured while the machine was busy and the percentages are unreliable; "
            "rerun on an idle machine",
            file=sys.stderr,
        )
    print(f"peak memory of an LSTM training step at {largest}: rnnkit {memory['rnnkit']:.0f} MB, "
          f"PyTorch {memory['torch']:.0f} MB")  # fmt: skip
    scipy = importlib.util.find_spec("scipy") is not None  # numba imports it at its first call
    print(
        f"new process: rnnkit --help {startup['help']:.2f} s; the first training step takes "
        f"{startup['first_step']:.2f} s longer than the second (numba's import and cache load"
        f"{'; SciPy is installed, and numba imports it too' if scipy else ''})"
    )
    results = {
        "sgemm_peak_gflops": peak,
        "rows": rows,
        "peak_memory_mb": memory,
        "startup_seconds": startup,
        "scipy_installed": scipy,
    }
    if json_path:
        from rnnkit.io.files import atomic_write_bytes

        atomic_write_bytes(Path(json_path), json.dumps(results, indent=1).encode("utf-8"))
    return results
