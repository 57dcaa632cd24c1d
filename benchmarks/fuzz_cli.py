"""Hostile model files through every command that loads a model, audited.

    python benchmarks/fuzz_cli.py [--files 1000] [--seed 0] [--workers 2] [--keep DIR]

Trains a tiny model of every kind (tests/hostile.py), writes ``--files`` edited copies of them
(JSON fields set to wrong types, huge, negative, missing or extra values, paths to a planted
secret file; tensor entries edited; bytes flipped; files cut short) and runs each through
``rnnkit generate``, ``evaluate`` and ``predict`` (with and without data) and ``diagnose``.
Every run is a child forked from this process (so numba's compiled loops are loaded once), with
a Python audit hook that records every file it opens and every directory it lists.

A run fails when it:
- ends other than with status 0 or 2 (1 is rnnkit's "internal error", i.e. a bug), prints a
  traceback, or with status 2 does not end with its one line of error;
- takes more than 60 s, or its peak resident memory (``wait4``'s ru_maxrss, which counts the
  pages it shares with this process too) exceeds 500 MB, or it runs out of memory (each child
  may map 6 GiB; a size that cannot fit must be refused before it is allocated);
- opens or lists a path that is neither on its command line (or in a folder named there, such
  as a run's --out) nor part of the Python installation, the rnnkit package or the system's
  /proc, /sys and /dev;
- prints the planted secret's contents.

Prints a summary and the failures, and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import resource
import signal
import site
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import hostile  # noqa: E402  (tests/hostile.py)
import rnnkit  # noqa: E402
from rnnkit.cli import main  # noqa: E402

TIMEOUT_S = 60
RSS_LIMIT_MB = 500
ADDRESS_SPACE = 6 * 2**30  # bytes a child may map: a runaway allocation fails, not the machine
SYSTEM_ROOTS = ("/proc/", "/sys/", "/dev/")


def allowed_roots() -> list[str]:
    """Directories a command may read anything under: Python's own files and rnnkit's."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()}
    roots.add(str(Path(rnnkit.__file__).resolve().parent))
    return [str(Path(root).resolve()) + "/" for root in roots]


def run_child(argv: list[str], result_path: Path, output_path: Path) -> None:
    """In the forked child: run ``rnnkit argv`` with the audit hook; never returns."""
    opened: list[str] = []

    def audit(event: str, args: tuple) -> None:
        if event in ("open", "os.listdir", "os.scandir") and args and args[0] is not None:
            path = args[0]
            if isinstance(path, int):
                return  # an already open descriptor
            opened.append(os.fsdecode(path))

    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))  # spare the machine
    output = os.open(output_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(output, 1)
    os.dup2(output, 2)
    sys.addaudithook(audit)
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 2
    except BaseException:  # an exception main let through: the failure this run looks for
        traceback.print_exc()
        status = 99
    sys.stdout.flush()
    sys.stderr.flush()
    result_path.write_text(json.dumps({"status": status, "opened": opened}))
    os._exit(0)


def run_all(jobs: list[tuple[list[str], set[str]]], workers: int, scratch: Path):
    """Run every ``(argv, paths on its command line)`` in forked children, ``workers`` at a
    time; yields ``(argv, allowed paths, status, opened, output, seconds, rss_mb, timed_out)``."""
    pending = collections.deque(enumerate(jobs))
    running = {}  # pid -> (index, start)
    while pending or running:
        while pending and len(running) < workers:
            index, (argv, _) = pending.popleft()
            pid = os.fork()
            if pid == 0:
                run_child(argv, scratch / f"{index}.json", scratch / f"{index}.out")
            running[pid] = (index, time.monotonic())
        time.sleep(0.002)
        for pid, (index, start) in list(running.items()):
            seconds = time.monotonic() - start
            timed_out = seconds > TIMEOUT_S
            if timed_out:
                os.kill(pid, signal.SIGKILL)
            done, _, usage = os.wait4(pid, 0 if timed_out else os.WNOHANG)
            if done == 0:
                continue
            del running[pid]
            argv, paths = jobs[index]
            result_file = scratch / f"{index}.json"
            result = json.loads(result_file.read_text()) if result_file.exists() else {}
            output = (scratch / f"{index}.out").read_text(errors="replace")
            yield (argv, paths, result.get("status"), result.get("opened", []), output,
                   seconds, usage.ru_maxrss / 1024, timed_out)  # fmt: skip


def problems_of(run, roots: list[str]) -> list[str]:
    """What is wrong with one run (empty when nothing is)."""
    argv, paths, status, opened, output, seconds, rss_mb, timed_out = run
    found = []
    if timed_out:
        found.append(f"hung (killed after {TIMEOUT_S} s)")
    elif status not in (0, 2):
        found.append(f"exit status {status}")
    if "Traceback" in output:
        found.append("printed a traceback")
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if ": error: " in line]
    if status == 2 and (len(errors) != 1 or errors[0] != lines[-1]):
        found.append("error not one last line")
    if rss_mb > RSS_LIMIT_MB:
        found.append(f"peak resident memory {rss_mb:.0f} MB")
    if "not enough memory (" in output:  # a MemoryError caught, not a size refused in advance
        found.append("ran out of memory")
    if hostile.CANARY in output:
        found.append("printed the planted secret")
    for path in opened:
        resolved = os.path.realpath(path)
        inside = resolved.startswith(SYSTEM_ROOTS) or any(
            (resolved + "/").startswith(root) for root in roots
        )
        if not inside and not hostile.under(resolved, paths):
            found.append(f"read {path}")
    return found


def main_fuzz() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000, help="edited model files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="children at a time")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: temp)")
    args = parser.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="rnnkit-fuzz-"))
    folder.mkdir(parents=True, exist_ok=True)
    secret = folder / "secret" / "canary.txt"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text(hostile.CANARY + "\n")
    started = time.perf_counter()
    seeds = hostile.train_seeds(folder / "seeds")
    print(f"seed models trained in {time.perf_counter() - started:.1f} s: {sorted(seeds)}")
    rng = np.random.default_rng(args.seed)
    generators = {
        kind: hostile.variants(seed["model"], rng, secret) for kind, seed in seeds.items()
    }
    kinds = sorted(seeds)
    files_dir = folder / "files"
    files_dir.mkdir(exist_ok=True)
    jobs, described = [], {}
    for number in range(args.files):
        kind = kinds[number % len(kinds)]
        description, data = next(generators[kind])
        path = files_dir / f"{number:05d}-{kind}.safetensors"
        path.write_bytes(data)
        for argv in hostile.commands(seeds[kind], path):
            on_line = {os.path.realpath(arg) for arg in argv if os.path.exists(arg)}
            jobs.append((argv, on_line))
            described[tuple(argv)] = f"{kind}: {description}"
    scratch = folder / "runs"
    scratch.mkdir(exist_ok=True)
    roots = allowed_roots()
    parent_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.files} files, {len(jobs)} runs, {args.workers} at a time; this process "
          f"(shared with every child) {parent_mb:.0f} MB resident")  # fmt: skip
    statuses, failures, peak_mb, slowest = collections.Counter(), [], 0.0, 0.0
    started = time.perf_counter()
    for run in run_all(jobs, args.workers, scratch):
        argv, status, seconds, rss_mb = run[0], run[2], run[5], run[6]
        statuses[status] += 1
        peak_mb, slowest = max(peak_mb, rss_mb), max(slowest, seconds)
        found = problems_of(run, roots)
        if found:
            last = run[4].strip().splitlines()[-1:] or [""]
            failures.append((argv, described[tuple(argv)], found, last[0][:200]))
    seconds = time.perf_counter() - started
    print(f"ran {len(jobs)} commands in {seconds:.0f} s; exit statuses {dict(statuses)}; "
          f"peak resident memory {peak_mb:.0f} MB; slowest run {slowest:.1f} s")  # fmt: skip
    by_problem = collections.Counter(
        re.sub(r"\d[\d.]*", "N", problem.split(" /")[0]) for *_, found, _ in failures
        for problem in found
    )  # fmt: skip
    print(f"failed runs: {len(failures)} {dict(by_problem) if failures else ''}")
    for argv, description, found, last in failures[:60]:
        print(f"- rnnkit {' '.join(argv[:1])} [{description}]: {'; '.join(found)}\n    {last}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main_fuzz())
