"""SIGKILL small ``rnnkit train`` runs at random moments and resume each until it completes.

Every *run* trains into a fresh directory with ``rnnkit train ...`` (``--resume`` added once it
holds a checkpoint: a resume without one is refused): a launch is killed with SIGKILL after a
random delay (uniform within the wall time of one uninterrupted run), and launched again, until a
launch completes. Runs are started until ``--kills`` kills in all. Checks:

- each run's ``model.safetensors`` holds exactly the uninterrupted run's tensors, bit for bit;
- no ``*.tmp`` file is left anywhere in a run's directory once it has completed (a kill during a
  write leaves one; the next launch removes it);
- one more run, killed once it has two checkpoints after step 0, has its newest checkpoint cut in
  half: the resume names the damaged file and the older one it uses, and still ends bit-equal.

    OPENBLAS_NUM_THREADS=1 python benchmarks/kill_resume.py              # 100 kills, 2 workers
    python benchmarks/kill_resume.py --kills 20 --workers 1 --keep /tmp/kills

Prints a table of the kills (where they landed) and the checks; exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rnnkit.io.safetensors import read_safetensors
from rnnkit.train.checkpoints import list_checkpoints

TEXT_CHARS = 60_000  # of Shakespeare, when no --text is given
SIZES = ["--hidden", "64", "--layers", "1", "--embedding", "16", "--batch", "16", "--seq-len",
         "50", "--checkpoint-every", "5", "--validate-every", "100"]  # fmt: skip
FALLBACK = "cannot be read"  # what the resume says of a damaged newest checkpoint


@dataclass
class Run:
    """One run: its launches and kills, and what its checks found."""

    number: int
    launches: int = 0
    kills: list[dict] = field(default_factory=list)  # per kill: {"tmp": bool, "progress": int}
    equal: bool = False
    tmp_left: list[str] = field(default_factory=list)
    error: str = ""


def newest_step(out: Path) -> int:
    """The step of the newest checkpoint in ``out`` (-1 when none)."""
    found = list_checkpoints(out / "checkpoints")
    return int(found[-1].stem.split("-")[1]) if found else -1


def launch(arguments: list[str], out: Path, log: Path) -> subprocess.Popen:
    resume = ["--resume"] if list_checkpoints(out / "checkpoints") else []
    environment = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    with open(log, "ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "rnnkit.cli", *arguments, "--out", str(out), *resume],
            stdout=output, stderr=output, env=environment,
        )  # fmt: skip


def same_tensors(path: Path, reference: dict) -> bool:
    arrays, _ = read_safetensors(path)
    return arrays.keys() == reference.keys() and all(
        arrays[name].dtype == value.dtype
        and arrays[name].shape == value.shape
        and arrays[name].tobytes() == value.tobytes()
        for name, value in reference.items()
    )


def killed_run(run: Run, arguments, work: Path, reference: dict, duration: float, seed: int):
    """Kill and resume ``run`` until a launch completes, then check it."""
    out, log = work / f"run-{run.number:03d}", work / f"run-{run.number:03d}.log"
    draw = random.Random(seed * 100_003 + run.number)
    while True:
        before = newest_step(out)
        process = launch(arguments, out, log)
        run.launches += 1
        try:
            status = process.wait(timeout=draw.uniform(0, duration))
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            tmp = any(out.rglob("*.tmp")) if out.exists() else False
            run.kills.append({"tmp": tmp, "progress": newest_step(out) - before})
            continue
        if status != 0:
            run.error = f"a launch ended with status {status}; see {log}"
            return
        break
    run.equal = same_tensors(out / "model.safetensors", reference)
    run.tmp_left = [str(path) for path in out.rglob("*.tmp")]


def damaged_newest(arguments, work: Path, reference: dict) -> dict:
    """Kill a run once it has two checkpoints after step 0, cut its newest in half, resume."""
    out, log = work / "damaged", work / "damaged.log"
    process = launch(arguments, out, log)
    while True:
        found = list_checkpoints(out / "checkpoints")
        if len(found) >= 2 and int(found[0].stem.split("-")[1]) > 0:
            break
        if process.poll() is not None:
            return {"error": f"the run ended before it could be killed; see {log}"}
        time.sleep(0.002)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    newest = list_checkpoints(out / "checkpoints")[-1]
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])
    start = log.stat().st_size
    status = launch(arguments, out, log).wait()
    said = log.read_bytes()[start:].decode("utf-8", "replace")
    message = next((line for line in said.splitlines() if FALLBACK in line), "")
    return {
        "status": status,
        "damaged": newest.name,
        "message": message,
        "named": f"{newest.name} cannot be read, so the older step-" in message,
        "equal": status == 0 and same_tensors(out / "model.safetensors", reference),
        "tmp_left": [str(path) for path in out.rglob("*.tmp")],
    }


def text_file(name: str | None, work: Path) -> str:
    if name is not None:
        return name
    from rnnkit.data.shakespeare import shakespeare_text

    path = work / "text.txt"
    path.write_text(shakespeare_text()[:TEXT_CHARS], encoding="utf-8")
    return str(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=100, help="SIGKILLs in all (at least)")
    parser.add_argument("--workers", type=int, default=2, help="runs at once")
    parser.add_argument("--steps", type=int, default=400, help="steps of each run")
    parser.add_argument("--text", help="the text to train on (default: Shakespeare's first "
                        f"{TEXT_CHARS:,} characters)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="for the kill delays")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as temporary:
        work = args.keep or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        arguments = ["train", "--text", text_file(args.text, work), *SIZES,
                     "--steps", str(args.steps)]  # fmt: skip
        start = time.perf_counter()
        status = launch(arguments, work / "reference", work / "reference.log").wait()
        duration = time.perf_counter() - start
        if status != 0:
            print(f"the uninterrupted run failed (status {status}); see {work}/reference.log")
            return 1
        reference, _ = read_safetensors(work / "reference" / "model.safetensors")
        print(f"uninterrupted run: {args.steps} steps in {duration:.2f} s (kills fall within it)")

        runs: list[Run] = []
        lock = threading.Lock()

        def worker() -> None:
            while True:
                with lock:
                    if sum(len(run.kills) for run in runs) >= args.kills:
                        return
                    run = Run(len(runs) + 1)
                    runs.append(run)
                killed_run(run, arguments, work, reference, duration, args.seed)

        with ThreadPoolExecutor(args.workers) as pool:
            for future in [pool.submit(worker) for _ in range(args.workers)]:
                future.result()
        damaged = damaged_newest(arguments, work, reference)
        elapsed = time.perf_counter() - start
        failures = report(runs, damaged, elapsed)
    return 1 if failures else 0


def report(runs: list[Run], damaged: dict, elapsed: float) -> int:
    """Print the table; the number of failed checks."""
    kills = [kill for run in runs for kill in run.kills]
    unequal = [run.number for run in runs if not run.equal]
    leftovers = [path for run in runs for path in run.tmp_left]
    errors = [f"run {run.number}: {run.error}" for run in runs if run.error]
    rows = [
        ("runs (each killed until a launch completed)", f"{len(runs)}"),
        ("launches", f"{sum(run.launches for run in runs)}"),
        ("SIGKILLs", f"{len(kills)}"),
        ("  before the launch wrote a checkpoint", f"{sum(not k['progress'] for k in kills)}"),
        ("  after it wrote some", f"{sum(k['progress'] > 0 for k in kills)}"),
        ("  that left a *.tmp file behind", f"{sum(kill['tmp'] for kill in kills)}"),
        ("most kills in one run", f"{max((len(run.kills) for run in runs), default=0)}"),
        (
            "runs whose model equals the uninterrupted one bit for bit",
            f"{len(runs) - len(unequal)} of {len(runs)}",
        ),  # fmt: skip
        ("*.tmp files left after the runs completed", f"{len(leftovers)}"),
        ("launches that failed", f"{len(errors)}"),
        (
            "damaged newest checkpoint: the resume names it and the older one",
            "yes" if damaged.get("named") else "NO",
        ),  # fmt: skip
        (
            "damaged newest checkpoint: the model equals the uninterrupted one",
            "yes" if damaged.get("equal") else "NO",
        ),  # fmt: skip
        ("damaged newest checkpoint: *.tmp files left", f"{len(damaged.get('tmp_left', []))}"),
        ("wall time", f"{elapsed:.0f} s"),
    ]
    print("\n| check | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print(f"\nthe resume said: {damaged.get('message') or damaged.get('error', '(nothing)')}")
    for line in errors + [f"*.tmp left: {path}" for path in leftovers]:
        print(line)
    if unequal:
        print(f"runs whose model differs: {unequal}")
    checks = [not unequal, not leftovers, not errors, damaged.get("named"), damaged.get("equal"),
              not damaged.get("tmp_left", [1])]  # fmt: skip
    return sum(not passed for passed in checks)


if __name__ == "__main__":
    sys.exit(main())
