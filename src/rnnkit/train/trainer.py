"""The training loop: steps of gradient descent on a task, with checkpoints that survive a kill.

A *task* says what a batch is and how the loss is computed; the trainer does the rest (clipping,
the optimizer step, schedules, validation, early stopping, keeping the best model, logs,
progress, checkpoints, resuming). A task has three methods:

    batches_per_epoch() -> int
    train_batch(model, epoch, index, carry) -> (loss, count, carry)
        forward, loss and backward on batch ``index`` of ``epoch``; gradients accumulate in
        ``model.grads``. Batches must depend only on (epoch, index) and the task's seed, so that a
        resumed run sees the same batches. ``carry`` is an array or a tuple of arrays passed
        from one batch to the next (the hidden state ``h`` or ``(h, c)`` in truncated BPTT),
        None at the start of every epoch;
        ``count`` is how many units (tokens, sequences) the batch held, for the speed figure.
    validate(model) -> dict[str, float]
        metrics on held-out data, computed on the inference path.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import sys
import time
from pathlib import Path

import numpy as np

from rnnkit.errors import UserError, UserTypeError
from rnnkit.io.files import atomic_write_bytes
from rnnkit.train import checkpoints
from rnnkit.train.clip import clip_grad_norm
from rnnkit.train.progress import Progress
from rnnkit.train.schedules import ReduceLROnPlateau


class Trainer:
    """Runs ``steps`` (or ``epochs``) optimizer steps of ``task`` on ``model``.

    Args:
        model: a Module. optimizer: from ``rnnkit.train.optim``, built on ``model``.
        task: see the module docstring.
        out_dir: where ``metrics.jsonl``, ``checkpoints/``, ``best.safetensors`` and
            ``loss.png`` go; None keeps nothing on disk (and cannot resume).
        steps / epochs: the length of the run (give exactly one).
        clip_norm: clip the gradients' global L2 norm to this (None: no clipping).
        schedule: a learning-rate schedule; ``ReduceLROnPlateau`` steps on each validation's
            monitored metric, the others at the end of each epoch.
        validate_every: validate every this many steps (None: at the end of each epoch).
        checkpoint_every: write a checkpoint every this many steps (and always at the end,
            unless the run failed). keep_checkpoints: how many of the newest to keep.
        monitor, mode: the validation metric that decides "best" and early stopping.
        patience: stop after this many validations without improvement (None: never).
        callbacks: objects with any of ``on_step(trainer, record)``,
            ``on_validation(trainer, record)``, ``on_end(trainer)``; setting
            ``trainer.stop_reason`` stops the run after the current step.
        extra: JSON-able data saved with checkpoints and the best model (e.g. a vocabulary).
        progress: show progress (bar on a terminal, log lines otherwise).
        progress_unit: what the task's ``count`` counts ("tokens", "sequences").

    A run that does not resume starts a new log in ``out_dir``; it refuses (ValueError) to start
    where an earlier run left checkpoints, which would otherwise mix with its own.
    """

    def __init__(
        self,
        model,
        optimizer,
        task,
        *,
        out_dir: str | Path | None = None,
        steps: int | None = None,
        epochs: int | None = None,
        clip_norm: float | None = None,
        schedule=None,
        validate_every: int | None = None,
        checkpoint_every: int | None = None,
        keep_checkpoints: int = 2,
        monitor: str = "val_loss",
        mode: str = "min",
        patience: int | None = None,
        callbacks=(),
        extra: dict | None = None,
        progress: bool = True,
        progress_unit: str = "steps",
    ) -> None:
        if (steps is None) == (epochs is None):
            raise UserError("give the run's length as exactly one of steps or epochs")
        if mode not in ("min", "max"):
            raise UserError(f"mode must be 'min' or 'max', got {mode!r}")
        _check_counts(
            steps=steps, epochs=epochs, validate_every=validate_every,
            checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints,
            patience=patience,
        )  # fmt: skip
        self.model, self.optimizer, self.task = model, optimizer, task
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.batches_per_epoch = task.batches_per_epoch()
        self.total_steps = steps if steps is not None else epochs * self.batches_per_epoch
        self.clip_norm, self.schedule = clip_norm, schedule
        self.validate_every, self.checkpoint_every = validate_every, checkpoint_every
        self.keep_checkpoints = keep_checkpoints
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.callbacks = list(callbacks)
        self.extra = extra or {}
        self.show_progress, self.progress_unit = progress, progress_unit
        # Where the run is; all of it goes into checkpoints.
        self.step = self.epoch = self.index = 0
        self.carry = None
        self.best: dict | None = None  # {"step": ..., monitor: ...}
        self.bad_validations = 0
        self.epoch_loss = 0.0  # sum of this epoch's step losses so far
        self.stop_reason: str | None = None
        self.failed = False  # True when a non-finite loss or gradient stopped the run
        self.last_validation: dict | None = None
        self.history: list[dict] = []  # records of this process (steps and validations)

    # ---------------------------------------------------------------- the loop

    def fit(self, resume: bool = False) -> dict:
        """Train to the end (or an early stop); returns a summary dict.

        With ``resume``, go on from the newest checkpoint in ``out_dir`` (if any).
        """
        if resume:
            self._resume()
        elif self.step == 0:
            self._start_fresh()
        progress = (
            Progress(self.total_steps, unit=self.progress_unit) if self.show_progress else None
        )
        self._progress = progress
        start = time.perf_counter()
        while self.step < self.total_steps and self.stop_reason is None:
            record = self._train_step()
            if record is None:
                break
            if progress:
                progress.update(self.step, record["loss"], record["count"])
            end_of_epoch = self.index == 0
            self.epoch_loss += record["loss"]
            if end_of_epoch:
                self._log_epoch()
            due = (self.validate_every and self.step % self.validate_every == 0) or (
                not self.validate_every and end_of_epoch
            )
            if due and self.stop_reason is None:
                self._validate()
            if end_of_epoch and self.schedule and not isinstance(self.schedule, ReduceLROnPlateau):
                self.schedule.step()
            if self.checkpoint_every and self.step % self.checkpoint_every == 0:
                self.save_checkpoint()
        if progress:
            progress.close()
        saved = self.checkpoint_every and self.step % self.checkpoint_every == 0
        if self.out_dir is not None and not self.failed and not saved:
            self.save_checkpoint()
        for callback in self.callbacks:
            if hasattr(callback, "on_end"):
                callback.on_end(self)
        return {
            "steps": self.step,
            "seconds": time.perf_counter() - start,
            "best": self.best,
            "stop_reason": self.stop_reason,
            "failed": self.failed,
            "last_validation": self.last_validation,
        }

    def _train_step(self) -> dict | None:
        if self.index == 0:
            self.carry = None  # a new pass over the data starts from a zero state
        self.optimizer.zero_grad()
        loss, count, carry = self.task.train_batch(self.model, self.epoch, self.index, self.carry)
        grad_norm = clip_grad_norm(self.model, self.clip_norm if self.clip_norm else math.inf)
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            bad = _first_non_finite(self.model.grads)
            problems = [f"the loss is {loss}"] if not math.isfinite(loss) else []
            if bad is not None:
                problems.append(f"the gradient of {bad} is not finite")
            elif not math.isfinite(grad_norm):
                problems.append(f"the gradient norm is {grad_norm}")
            self._fail(" and ".join(problems) + " (the step was not applied)", grad_norm)
            return None
        self.optimizer.step()
        bad = _first_non_finite(self.model.params)
        if bad is not None:  # a finite gradient times a huge learning rate can overflow
            self._fail(
                f"the update made {bad} not finite (the model in memory is broken)", grad_norm
            )
            return None
        self.carry = carry
        epoch = self.epoch  # the epoch this batch belongs to
        self.step += 1
        self.index += 1
        if self.index == self.batches_per_epoch:
            self.epoch, self.index = self.epoch + 1, 0
        record = {
            "kind": "step",
            "step": self.step,
            "epoch": epoch,
            "loss": float(loss),
            "grad_norm": float(grad_norm),
            "lr": float(self.optimizer.lr),
            "count": int(count),
            "time": time.time(),
        }
        self._log(record)
        for callback in self.callbacks:
            if hasattr(callback, "on_step"):
                callback.on_step(self, record)
        return record

    def _log_epoch(self) -> None:
        """Log the mean training loss of the epoch that just ended."""
        finished = self.epoch - 1
        mean = self.epoch_loss / self.batches_per_epoch
        self._log({"kind": "epoch", "step": self.step, "epoch": finished, "loss": mean})
        self.epoch_loss = 0.0

    def _fail(self, problem: str, grad_norm: float) -> None:
        """Stop the run as failed at the step being taken; no checkpoint is written after.

        The message names the step, the problem, the step's gradient norm (before clipping; the
        log never shows a failed step) and the checkpoint a resume would start from.
        """
        self.failed = True
        norm = f"; its gradient norm was {grad_norm:.3g}" if math.isfinite(grad_norm) else ""
        found = (
            []
            if self.out_dir is None
            else checkpoints.list_checkpoints(self.out_dir / "checkpoints")
        )
        kept = (
            f"the last good checkpoint, {found[-1].name}, is kept"
            if found
            else "no checkpoint was written"
        )
        self.stop_reason = (
            f"stopped at step {self.step + 1}: {problem}{norm}; {kept}; "
            "lower the learning rate or clip harder"
        )
        self.message(self.stop_reason)

    def _validate(self) -> None:
        metrics = {name: float(value) for name, value in self.task.validate(self.model).items()}
        if self.monitor not in metrics:
            raise UserError(
                f"monitor={self.monitor!r} is not among the task's validation metrics "
                f"{sorted(metrics)}; set monitor to one of them"
            )
        record = {"kind": "validation", "step": self.step, "epoch": self.epoch, **metrics}
        self.last_validation = record
        value = metrics[self.monitor]
        best = None if self.best is None else self.best[self.monitor]
        better = best is None or (value < best if self.mode == "min" else value > best)
        improved = math.isfinite(value) and better  # a NaN validation is never the best
        if improved:
            self.best = {"step": self.step, self.monitor: value}
            self.bad_validations = 0
            if self.out_dir is not None:
                from rnnkit.io.models import save  # late import: io.models registers the models

                save(self.model, self.out_dir / "best.safetensors", extra=self.extra)
        else:
            self.bad_validations += 1
        if isinstance(self.schedule, ReduceLROnPlateau):
            self.schedule.step(value)
        shown = ", ".join(f"{name} {value:.4f}" for name, value in metrics.items())
        self.message(f"step {self.step}: {shown}" + (" (best)" if improved else ""))
        self._log(record)
        for callback in self.callbacks:
            if hasattr(callback, "on_validation"):
                callback.on_validation(self, record)
        if self.patience is not None and self.bad_validations >= self.patience:
            self.stop_reason = (
                f"early stop at step {self.step}: {self.monitor} has not improved for "
                f"{self.patience} validations (best {self.best})"
            )
            self.message(self.stop_reason)

    def message(self, text: str) -> None:
        """Print a line beside the progress display."""
        progress = getattr(self, "_progress", None)
        if progress is not None:
            progress.message(text)
        else:
            print(text, file=sys.stderr, flush=True)

    # ---------------------------------------------------------------- logs

    def _log(self, record: dict) -> None:
        self.history.append(record)
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as log:
                log.write(json.dumps(record) + "\n")

    def _start_fresh(self) -> None:
        """Begin a new run in ``out_dir``: refuse an earlier run's checkpoints (a resume would
        pick theirs, and they would push this run's own out); drop a log without checkpoints
        (from a run killed before its first one)."""
        if self.out_dir is None:
            return
        found = checkpoints.list_checkpoints(self.out_dir / "checkpoints")
        if found:
            raise UserError(
                f"{self.out_dir} holds checkpoints of an earlier run (newest {found[-1].name}); "
                f"resume it (resume=True, --resume), give another output directory, or delete "
                f"{found[-1].parent}"
            )
        (self.out_dir / "metrics.jsonl").unlink(missing_ok=True)

    def _truncate_log(self) -> None:
        """Drop log records after the resumed step (they came from work the kill lost)."""
        path = self.out_dir / "metrics.jsonl"
        if not path.exists():
            return
        kept = [
            line
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and _complete_record(line) and json.loads(line)["step"] <= self.step
        ]
        atomic_write_bytes(path, "".join(line + "\n" for line in kept).encode())

    # ---------------------------------------------------------------- checkpoints

    def save_checkpoint(self) -> Path | None:
        """Write everything the run needs to continue exactly from here."""
        if self.out_dir is None:
            return None
        arrays = {f"model/{name}": value for name, value in self.model.params.items()}
        optimizer_scalars = {}
        for key, value in self.optimizer.state_dict().items():
            if isinstance(value, np.ndarray):
                arrays[f"optimizer/{key}"] = value
            else:
                optimizer_scalars[key] = value
        carry = (self.carry,) if isinstance(self.carry, np.ndarray) else self.carry or ()
        for position, value in enumerate(carry):
            arrays[f"carry/{position}"] = value
        state = {
            "step": self.step,
            "epoch": self.epoch,
            "index": self.index,
            "carry_parts": None if self.carry is None else len(carry),
            "carry_is_array": isinstance(self.carry, np.ndarray),
            "model": self._architecture(),
            "optimizer": optimizer_scalars,
            "schedule": self.schedule.state_dict() if self.schedule else None,
            "generators": {
                name: generator.bit_generator.state
                for name, generator in self.model.generators().items()
            },
            "best": self.best,
            "bad_validations": self.bad_validations,
            "epoch_loss": self.epoch_loss,
            "extra": self.extra,
        }
        return checkpoints.write_checkpoint(
            self.out_dir / "checkpoints", self.step, arrays, state, self.keep_checkpoints
        )

    def _architecture(self) -> dict:
        """The model's class and constructor arguments, so a checkpoint says what it holds."""
        architecture = {"class": type(self.model).__name__}
        with contextlib.suppress(NotImplementedError):  # a composite such as Sequential
            architecture["config"] = self.model.config()
        return architecture

    def _resume(self) -> None:
        if self.out_dir is None:
            raise UserError("resume needs out_dir: that is where the checkpoints are")
        found = checkpoints.list_checkpoints(self.out_dir / "checkpoints")
        if not found:
            self.message(f"no checkpoint in {self.out_dir / 'checkpoints'}; starting afresh")
            self._start_fresh()
            return
        arrays, state = checkpoints.read_checkpoint(found[-1])
        self.model.load_state_dict(checkpoints.split_prefix(arrays, "model"))
        self.optimizer.load_state_dict(
            {**state["optimizer"], **checkpoints.split_prefix(arrays, "optimizer")}
        )
        if self.schedule and state["schedule"] is not None:
            self.schedule.load_state_dict(state["schedule"])
        generators = self.model.generators()
        for name, generator_state in state["generators"].items():
            generators[name].bit_generator.state = generator_state
        carry = checkpoints.split_prefix(arrays, "carry")
        parts = state["carry_parts"]
        self.carry = None if parts is None else tuple(carry[str(i)] for i in range(parts))
        if state.get("carry_is_array"):
            (self.carry,) = self.carry
        self.step, self.epoch, self.index = state["step"], state["epoch"], state["index"]
        self.best, self.bad_validations = state["best"], state["bad_validations"]
        self.epoch_loss = state.get("epoch_loss", 0.0)
        self._truncate_log()
        self.message(f"resumed from {found[-1]} at step {self.step}")


def _check_counts(**counts) -> None:
    """TypeError/ValueError unless each count is None or an int >= 1."""
    for name, value in counts.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise UserTypeError(f"Trainer: {name} must be an int or None, got {value!r}")
        if value < 1:
            raise UserError(f"Trainer: {name} must be at least 1, got {value}")


def _first_non_finite(arrays: dict[str, np.ndarray]) -> str | None:
    """The name of the first array holding NaN or inf, None if all are finite."""
    return next((name for name, array in arrays.items() if not np.isfinite(array).all()), None)


def _complete_record(line: str) -> bool:
    """Whether a log line is a whole JSON record (a kill can leave half a line)."""
    try:
        json.loads(line)
    except json.JSONDecodeError:
        return False
    return True
