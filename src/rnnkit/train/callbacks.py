"""Trainer callbacks (see ``rnnkit.train.trainer``): objects with ``on_step``/``on_end`` methods."""

from __future__ import annotations

import json
from pathlib import Path

from rnnkit.errors import UserError
from rnnkit.io.files import atomic_write_bytes
from rnnkit.nn.norms import global_norm, l2_norm


class GradientMonitor:
    """Logs gradient norms (global and per parameter) and counts the steps that were clipped.

    Every ``every`` steps one JSON line goes to ``path`` (default ``grad_norms.jsonl`` in the
    trainer's ``out_dir``; no file when neither is set) and to ``self.history``:
    ``{"step", "grad_norm", "clipped", "params": {name: norm}}``. ``grad_norm`` is the global L2
    norm before clipping (the Trainer's record); the per-parameter norms are also taken before
    clipping (clipping scales every gradient by one factor, undone here), so their squares add up
    to ``grad_norm ** 2``. A step counts as clipped when ``grad_norm > trainer.clip_norm``.

    A non-finite loss, gradient or parameter is the Trainer's to handle: it stops the run before
    the step is applied, names the step and the parameter, and keeps the last good checkpoint;
    such a step never reaches ``on_step``. On a resumed run the log is cut back to the steps
    before the first one this process takes; the counts cover this process's steps.
    """

    def __init__(self, path: str | Path | None = None, every: int = 1) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise UserError(f"GradientMonitor: every must be an int >= 1, got {every!r}")
        self.path = Path(path) if path is not None else None
        self.every = every
        self.steps = 0  # steps seen by this process
        self.clipped_steps = 0
        self.largest: tuple[float, int] | None = None  # (grad_norm, step)
        self.history: list[dict] = []
        self._started = False

    def on_step(self, trainer, record: dict) -> None:
        norm, step = record["grad_norm"], record["step"]
        clipped = bool(trainer.clip_norm) and norm > trainer.clip_norm
        self.steps += 1
        self.clipped_steps += clipped
        if self.largest is None or norm > self.largest[0]:
            self.largest = (norm, step)
        path = self._log_path(trainer)
        if not self._started:
            self._started = True
            if path is not None:
                drop_records_from(path, step)
        if step % self.every:
            return
        applied = global_norm(trainer.model)  # after clipping: norm * scale
        unclip = norm / applied if applied > 0.0 else 1.0
        entry = {
            "step": step,
            "grad_norm": norm,
            "clipped": clipped,
            "params": {name: l2_norm(grad) * unclip for name, grad in trainer.model.grads.items()},
        }
        self.history.append(entry)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as log:
                log.write(json.dumps(entry) + "\n")

    def on_end(self, trainer) -> None:
        trainer.message(self.summary(trainer.clip_norm))

    def summary(self, clip_norm: float | None) -> str:
        """E.g. 'gradient norm: largest 8.3 at step 12; 40 of 1500 steps clipped to 1.0'."""
        if self.largest is None:
            return "gradient norm: no step was taken"
        largest, step = self.largest
        clipping = (
            f"{self.clipped_steps} of {self.steps} steps clipped to {clip_norm:g}"
            if clip_norm
            else "no clipping"
        )
        return f"gradient norm: largest {largest:.3g} at step {step}; {clipping}"

    def _log_path(self, trainer) -> Path | None:
        if self.path is not None:
            return self.path
        return None if trainer.out_dir is None else trainer.out_dir / "grad_norms.jsonl"


def drop_records_from(path: Path, step: int) -> None:
    """Remove the JSON-lines log records of ``step`` and later from ``path`` (and lines that
    are not whole records: a kill can leave half a line)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            if json.loads(line)["step"] < step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a kill can leave half a line
    atomic_write_bytes(path, "".join(line + "\n" for line in kept).encode())
