"""Progress you can watch: a one-line bar on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import math
import sys
import time


def format_duration(seconds: float) -> str:
    """'1h02m', '3m05s' or '42s'."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """Shows step, loss, speed and ETA.

    On a terminal one line is redrawn in place (at most ``redraws_per_second`` times a second);
    when the output is a file or pipe, a plain line is printed every ``every`` steps instead.
    ``unit`` names what ``count`` counts per step (e.g. tokens) for the throughput figure.
    """

    def __init__(self, total_steps: int, stream=None, every: int = 50, unit: str = "steps"):
        self.total = total_steps
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = every
        self.unit = unit
        self.start_time = time.perf_counter()
        self.start_step: int | None = None
        self.last_draw = -math.inf  # the first update always draws
        self.count = 0

    def update(self, step: int, loss: float, count: int = 1) -> None:
        """Report that ``step`` (1-based) finished with ``loss`` after ``count`` units of work."""
        now = time.perf_counter()
        if self.start_step is None:  # first step of this process (maybe a resumed run)
            self.start_step, self.start_time = step - 1, now - 1e-9
        self.count += count
        elapsed = now - self.start_time
        steps_done = step - self.start_step
        rate = self.count / elapsed
        eta = (self.total - step) * elapsed / steps_done
        line = (
            f"step {step}/{self.total} | loss {loss:.4f} | {rate:,.0f} {self.unit}/s | "
            f"elapsed {format_duration(elapsed)} | ETA {format_duration(eta)}"
        )
        if self.interactive:
            if now - self.last_draw >= 0.2 or step == self.total:
                self.stream.write("\r" + line + "\033[K")
                self.stream.flush()
                self.last_draw = now
        elif step % self.every == 0 or step == self.total:
            print(line, file=self.stream, flush=True)

    def message(self, text: str) -> None:
        """Print a line of its own (a validation result, a sample) without breaking the bar."""
        if self.interactive:
            self.stream.write("\r\033[K")
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()
