"""rnnkit and PyTorch timed in turn, each in its own worker process (``serve``), for
``rnnkit.bench.speed``: the functions a case times, and how one call is timed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

import rnnkit
from rnnkit import cells


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


PAUSE = 0.2  # seconds before each timed call: the other library's idle threads go to sleep
# Seconds of untimed calls between the pause and the timed call: after a pause, the first ~0.1 s
# of work can run slower than calls back to back (measured: docs/performance.md).
WARM_UP = 0.1


def warm_up(run) -> None:
    """``run()`` at least once, and again until WARM_UP seconds have passed."""
    start = time.perf_counter()
    run()
    while time.perf_counter() - start < WARM_UP:
        run()


def case_functions(library: str, case: tuple) -> dict:
    """The functions a case times, by mode, for ``library`` ('rnnkit' or 'torch'): built in that
    library's worker process, with the same weights (an rnnkit layer seeded 0 gives them to the
    torch one) and the same input. ``case``: ('layer', cell, shape, layers, bidirectional) or
    ('streaming', inputs, hidden)."""
    kind, *spec = case
    if kind == "streaming":
        return _streaming_functions(library, *spec)
    cell, (batch, steps, inputs, hidden), layers, bidirectional = spec  # JSON: lists
    ours = rnnkit.Recurrent(cell, inputs, hidden, layers, bidirectional=bidirectional, seed=0)
    x = np.random.default_rng(1).standard_normal((steps, batch, inputs), dtype=np.float32)
    if library == "rnnkit":

        def train():
            (output, _), backward = ours.forward(x)
            backward(np.ones_like(output))

        return {"inference": lambda: ours(x), "training": train}
    import torch

    theirs = getattr(torch.nn, cells.get(cell).torch_name)(
        inputs, hidden, layers, bidirectional=bidirectional
    )
    _copy_weights(ours, theirs)
    x_torch = torch.from_numpy(x)

    def infer():
        with torch.no_grad():
            theirs(x_torch)

    def train():
        output, _ = theirs(x_torch.clone().requires_grad_(True))
        output.sum().backward()

    return {"inference": infer, "training": train}


def _copy_weights(ours, theirs) -> None:
    """rnnkit module -> torch module of the same kind (the names are PyTorch's)."""
    import torch

    theirs.load_state_dict({name: torch.from_numpy(v) for name, v in ours.state_dict().items()})


STREAMING_STEPS = 100  # cell steps per timed call


def _streaming_functions(library: str, inputs: int, hidden: int) -> dict:
    ours = rnnkit.LSTMCell(inputs, hidden, seed=0)
    x = np.random.default_rng(1).standard_normal((1, inputs), dtype=np.float32)
    state = (np.zeros((1, hidden), np.float32), np.zeros((1, hidden), np.float32))
    if library == "rnnkit":

        def steps():
            current = state
            for _ in range(STREAMING_STEPS):
                current = ours(x, current)

        return {"streaming step": steps}
    import torch

    theirs = torch.nn.LSTMCell(inputs, hidden)
    _copy_weights(ours, theirs)
    x_torch = torch.from_numpy(x)
    state_torch = tuple(torch.from_numpy(part) for part in state)

    def steps():
        with torch.no_grad():
            current = state_torch
            for _ in range(STREAMING_STEPS):
                current = theirs(x_torch, current)

    return {"streaming step": steps}


def serve(library: str) -> None:
    """One library's timing process (``python -c "from rnnkit.bench.race import serve; ..."``), one
    JSON request per line on stdin, one answer per line on stdout: ['case', case, warmup] builds
    and warms up the case's functions; ['time', mode] answers the seconds of one call, made after
    a pause of PAUSE seconds and WARM_UP seconds of untimed calls. Errors go back as
    ['error', text]."""
    rnnkit.tune_process()  # as the CLI makes them (none for PyTorch: RNNKIT_PROCESS_SETTINGS=0)
    functions = {}
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request[0] == "case":
                _, case, warmup = request
                functions = case_functions(library, case)
                for _ in range(warmup):
                    for run in functions.values():
                        run()
                answer = ["ok", None]
            else:
                run = functions[request[1]]
                time.sleep(PAUSE)
                warm_up(run)
                answer = ["ok", timed(run)]
        except Exception as error:  # noqa: BLE001 (reported by the coordinating process)
            answer = ["error", f"{library}: {type(error).__name__}: {error}"]
        print(json.dumps(answer), flush=True)


class Race:
    """rnnkit and PyTorch, each in its own process, timed in turn.

    In one process each library paid for the other's threads: after a PyTorch call, even a
    pause later, rnnkit's small cases often ran several times slower (not with either library
    held to one thread). Apart, neither sees the other's threads; alternating, both see the
    same machine.
    """

    LIBRARIES = ("rnnkit", "torch")

    def __enter__(self):
        self.workers = {
            library: subprocess.Popen(
                [sys.executable, "-c", f"from rnnkit.bench.race import serve; serve({library!r})"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=self._environment(library),
            )
            for library in self.LIBRARIES
        }
        return self

    @staticmethod
    def _environment(library: str) -> dict:
        """PyTorch's process runs without rnnkit's process settings (``rnnkit._environment``),
        as its users run it; rnnkit's with them, as the CLI makes them (``serve``)."""
        if library == "rnnkit":
            return dict(os.environ)
        return {**os.environ, "RNNKIT_PROCESS_SETTINGS": "0"}

    def __exit__(self, *exc):
        for worker in self.workers.values():
            worker.stdin.close()  # the worker's loop ends with its input
            worker.wait(timeout=30)

    def _ask(self, library: str, request: list):
        worker = self.workers[library]
        worker.stdin.write(json.dumps(request) + "\n")
        worker.stdin.flush()
        line = worker.stdout.readline()
        if not line:
            raise RuntimeError(f"the {library} benchmark process ended (exit code {worker.wait()})")
        status, value = json.loads(line)
        if status == "error":
            raise RuntimeError(f"benchmark process failed: {value}")
        return value

    def times(self, case: tuple, repeats: int, warmup: int = 2) -> dict:
        """``{mode: (rnnkit's seconds, torch's seconds)}``, ``repeats`` calls each, alternating
        between the libraries call by call; torch's None for a cell without a PyTorch twin."""
        twin = case[0] == "streaming" or cells.get(case[1]).torch_name is not None
        libraries = self.LIBRARIES if twin else ("rnnkit",)
        for library in libraries:
            self._ask(library, ["case", case, warmup])
        modes = ("streaming step",) if case[0] == "streaming" else ("inference", "training")
        results = {}
        for mode in modes:
            per_library = {library: [] for library in libraries}
            for _ in range(repeats):
                for library in libraries:
                    per_library[library].append(self._ask(library, ["time", mode]))
            results[mode] = tuple(per_library.get(library) for library in self.LIBRARIES)
        return results
