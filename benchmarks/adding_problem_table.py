"""How many steps each cell needs on the adding problem, at several lengths.

Runs ``examples/adding_problem.py`` for every (cell, length) pair, stopping a run once its
validation MSE is below the target (or at ``--max-steps``), two runs at a time with one BLAS
thread each, and prints a Markdown table of steps and test MSE. Predicting the mean gives an MSE
of about 0.167.

    python benchmarks/adding_problem_table.py --lengths 50 100 200 --max-steps 6000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "adding_problem.py"


def run(cell: str, length: int, max_steps: int, target: float, seed: int) -> dict:
    command = [
        sys.executable, str(EXAMPLE), "--cell", cell, "--length", str(length),
        "--steps", str(max_steps), "--target", str(target), "--seed", str(seed),
    ]  # fmt: skip
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    output = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    figures = dict(
        line.split(": ") for line in output.splitlines() if line.startswith(("steps:", "test_mse:"))
    )
    return {"cell": cell, "length": length, "steps": int(figures["steps"]),
            "test_mse": float(figures["test_mse"])}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[50, 100, 200])
    parser.add_argument("--max-steps", type=int, default=6000)
    parser.add_argument("--target", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    jobs = [(cell, length) for length in args.lengths for cell in args.cells]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(
            pool.map(lambda job: run(*job, args.max_steps, args.target, args.seed), jobs)
        )
    print(f"| cell | T | steps until validation MSE < {args.target} | test MSE |")
    print("|---|---|---|---|")
    for result in results:
        solved = result["steps"] < args.max_steps  # stopped early: validation MSE < target
        steps = f"{result['steps']:,}" if solved else f"not within {args.max_steps:,}"
        print(f"| {result['cell']} | {result['length']} | {steps} | {result['test_mse']:.4f} |")


if __name__ == "__main__":
    main()
