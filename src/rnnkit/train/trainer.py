"""The training loop: steps of gradient descent on a task, with checkpoints that survive a kill.

A *task* says what a batch is and how the loss is computed; the trainer does the rest (clipping,
the optimizer step, schedules, validation, early stopping, keeping the best model, logs,
progress, checkpoints, resuming, stopping a diverging run). A task has three methods:

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

Divergence. The reference is the *initial loss*: the mean loss of the first ``DIVERGENCE_WINDOW``
batches at the initial weights, computed before step 1 without changing anything (gradients zeroed,
random generators restored), so that one easy first batch does not set it. A run has *diverged*
when the median of its last ``DIVERGENCE_WINDOW`` step losses is over the limit,
``divergence_factor`` (4) times the initial loss (for a loss that can be negative: the initial loss
plus ``divergence_factor - 1`` times its size). The median lets single spikes through: the IRNN of
``examples/vanishing_gradients.py`` has one step far over its initial loss (its gradient norm goes
above 1e6, clipped) and then trains on. A run is *unhealthy* from the first step whose loss is over
the limit until ``DIVERGENCE_WINDOW`` steps in a row are back under it; no checkpoint is written
while it is. A diverged run stops before applying the step, with a message naming the step, the
median against the initial loss and the gradient norm, and removes the checkpoints written from the
step before the loss first went over the limit (their weights made those losses), so that the
newest one left is from before the divergence began. A non-finite loss or gradient stops the run
the same way. A fresh run writes a checkpoint at step 0, so that there is always one to go back to.

Resuming. The newest checkpoint that can be read is used (a damaged newest file is skipped, with a
message, for the older one kept beside it), every entry checked (``checkpoints.checked_state``);
a resume where there is none is refused (a mistyped folder would otherwise train afresh).
The trainer's settings (learning rate, clipping, length, validation and checkpoint intervals) may
differ from the checkpoint's: each change is applied and reported. When ``extra`` holds the run's
``options`` (the tasks' do), all other options (sizes, cell, data, batches, seed, ...) and the rest
of ``extra`` must equal the checkpoint's, or the resume is refused, naming what differs
(``run_options`` reads them first, so that a caller can resume with the run's options).

An interrupted run (KeyboardInterrupt, Ctrl-C) loses the work since its newest checkpoint; ``fit``
raises the KeyboardInterrupt again with a message: the step reached, the checkpoint kept and how
to resume.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from rnnkit.errors import UserError, UserTypeError
from rnnkit.io.models import save
from rnnkit.train import checkpoints
from rnnkit.train.callbacks import drop_records_from
from rnnkit.train.clip import clip_grad_norm
from rnnkit.train.progress import Progress, format_duration
from rnnkit.train.schedules import ReduceLROnPlateau

DIVERGENCE_WINDOW = 5  # step losses whose median is checked; batches in the initial loss
# Options in extra["options"] that a resume may change: they steer the training, not the model,
# the data or the batches.
RESUMABLE_OPTIONS = frozenset(
    {"lr", "clip", "steps", "epochs", "validate_every", "checkpoint_every", "out", "resume"}
)
DATA_PATH_OPTIONS = frozenset({"csv", "npz", "tsv"})  # files known by their data's sha256
SETTINGS = {  # the trainer's settings a resume may change, as its messages name them
    "lr": "learning rate",
    "clip_norm": "gradient clipping norm",
    "total_steps": "total steps",
    "validate_every": "steps between validations",
    "checkpoint_every": "steps between checkpoints",
}
_AFRESH = "train afresh into another output directory"


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
        checkpoint_every: write a checkpoint every this many steps (and at step 0 and at the end,
            unless the run failed; one due while the run is unhealthy waits until it is not).
            keep_checkpoints: how many of the newest to keep, at least 2 (the older one is what
            a resume goes back to when the newest is damaged or was written as a run diverged).
        monitor, mode: the validation metric that decides "best" and early stopping.
        patience: stop after this many validations without improvement (None: never).
        callbacks: objects with any of ``on_step(trainer, record)``,
            ``on_validation(trainer, record)``, ``on_end(trainer)``; setting
            ``trainer.stop_reason`` stops the run after the current step.
        extra: JSON-able data saved with checkpoints and the best model (e.g. a vocabulary).
        progress: show progress (bar on a terminal, log lines otherwise).
        progress_unit: what the task's ``count`` counts ("tokens", "sequences").
        divergence_factor: stop when the loss diverges (see the module docstring); None: only
            when it is not finite.
        resume_how: how the user resumes this run, for messages ("resume=True"; the command
            line gives its command).

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
        divergence_factor: float | None = 4.0,
        resume_how: str = "resume=True",
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
        if keep_checkpoints < 2:
            raise UserError(
                f"Trainer: keep_checkpoints must be at least 2 (a resume falls back to the older "
                f"one when the newest is damaged or diverged), got {keep_checkpoints}"
            )
        if divergence_factor is not None and not (
            isinstance(divergence_factor, numbers.Real) and 1 < divergence_factor < math.inf
        ):
            raise UserError(
                f"Trainer: divergence_factor must be a number > 1 or None, got "
                f"{divergence_factor!r}; try 4"
            )
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
        self.divergence_factor = divergence_factor
        self.resume_how = resume_how
        self.lr = float(optimizer.lr)  # the learning rate this run was given
        # Where the run is; all of it goes into checkpoints.
        self.step = self.epoch = self.index = 0
        self.carry = None
        self.best: dict | None = None  # {"step": ..., monitor: ...}
        self.bad_validations = 0
        self.epoch_loss = 0.0  # sum of this epoch's step losses so far
        self.stop_reason: str | None = None
        self.failed = False  # True when divergence or a non-finite value stopped the run
        self.initial_loss: float | None = None  # the divergence check's reference
        self.recent_losses: list[float] = []  # the last DIVERGENCE_WINDOW step losses
        self.unhealthy_since: int | None = None  # see the module docstring
        self.saved_step: int | None = None  # the step of the checkpoint this process last wrote
        self.checkpoint_due = False
        self.last_validation: dict | None = None
        self.history: list[dict] = []  # records of this process (steps and validations)

    # ---------------------------------------------------------------- the loop

    def fit(self, resume: bool = False) -> dict:
        """Train to the end (or an early stop); returns a summary dict: ``steps`` (the step
        reached), ``resumed_at`` (the step this process went on from, None for a fresh run),
        ``steps_run``, ``seconds`` and ``count`` (the units of ``unit`` trained on) of this
        process's training, and ``best``, ``stop_reason``, ``failed``, ``last_validation``.

        With ``resume``, go on from the newest checkpoint in ``out_dir`` (UserError when there is
        none). Either way, the temporary files that a kill during a write left in ``out_dir`` are
        removed first. Interrupted (KeyboardInterrupt), it raises a KeyboardInterrupt whose
        message says the step reached, the checkpoint kept and how to resume.
        """
        try:
            return self._fit(resume)
        except KeyboardInterrupt as interrupt:
            raise KeyboardInterrupt(self._interrupted()).with_traceback(
                interrupt.__traceback__
            ) from None

    def _fit(self, resume: bool) -> dict:
        if self.out_dir is not None:
            self._remove_stale_temp_files()
        if resume:
            self._resume()
        elif self.step == 0:
            self._start_fresh()
        progress = (
            Progress(self.total_steps, unit=self.progress_unit) if self.show_progress else None
        )
        self._progress = progress
        first_step, start = self.step, time.perf_counter()
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
            due = (
                (self.validate_every and self.step % self.validate_every == 0)
                or (not self.validate_every and end_of_epoch)
                or self.step == self.total_steps  # the run's end is always validated
            )
            if due and self.stop_reason is None:
                self._validate()
            if end_of_epoch and self.schedule and not isinstance(self.schedule, ReduceLROnPlateau):
                self.schedule.step()
            if self.checkpoint_every and self.step % self.checkpoint_every == 0:
                self.checkpoint_due = True
            if self.checkpoint_due and self.unhealthy_since is None:
                self.save_checkpoint()
        seconds = time.perf_counter() - start
        if progress:
            progress.close()
        healthy = not self.failed and self.unhealthy_since is None
        if healthy and self.saved_step != self.step:
            self.save_checkpoint()
        for callback in self.callbacks:
            if hasattr(callback, "on_end"):
                callback.on_end(self)
        return {
            "steps": self.step,
            "resumed_at": first_step if resume else None,
            "steps_run": self.step - first_step,
            "seconds": seconds,
            "count": sum(
                record["count"]
                for record in self.history
                if record["kind"] == "step" and record["step"] > first_step
            ),
            "unit": self.progress_unit,
            "best": self.best,
            "stop_reason": self.stop_reason,
            "failed": self.failed,
            "last_validation": self.last_validation,
        }

    def _interrupted(self) -> str:
        """What an interrupt leaves: the step reached, the checkpoint kept, how to resume."""
        found = checkpoints.list_checkpoints(self.out_dir / "checkpoints") if self.out_dir else []
        kept = (
            f"the checkpoint of step {checkpoints.step_of(found[-1])} is kept; resume with: "
            f"{self.resume_how}"
            if found
            else "no checkpoint was written"
        )
        return f"after step {self.step} of {self.total_steps}; {kept}"

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
            problem = " and ".join(problems) + " (the step was not applied)"
            self._fail(problem, grad_norm, self.unhealthy_since or self.step + 1)
            return None
        self._track(float(loss))
        if self._diverged():
            median = statistics.median(self.recent_losses)
            problem = (
                f"the loss diverged: the median of the last {DIVERGENCE_WINDOW} step losses, "
                f"{median:.4g}, is over {self.divergence_factor:g} times the initial loss, "
                f"{self.initial_loss:.4g} (first over that at step {self.unhealthy_since}; this "
                "step was not applied)"
            )
            self._fail(problem, grad_norm, self.unhealthy_since)
            return None
        self.optimizer.step()
        bad = _first_non_finite(self.model.params)
        if bad is not None:  # a finite gradient times a huge learning rate can overflow
            problem = f"the update made {bad} not finite (the model in memory is broken)"
            self._fail(problem, grad_norm, self.unhealthy_since)
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

    def _track(self, loss: float) -> None:
        """Note the loss of the step being taken for the divergence check."""
        limit = self._loss_limit()
        if limit is None:
            return
        if loss > limit and self.unhealthy_since is None:
            self.unhealthy_since = self.step + 1
        self.recent_losses = [*self.recent_losses, loss][-DIVERGENCE_WINDOW:]
        full = len(self.recent_losses) == DIVERGENCE_WINDOW
        if full and max(self.recent_losses) <= limit:
            self.unhealthy_since = None

    def _diverged(self) -> bool:
        """Whether the median of the last DIVERGENCE_WINDOW step losses is over the limit."""
        limit = self._loss_limit()
        full = len(self.recent_losses) == DIVERGENCE_WINDOW
        return limit is not None and full and statistics.median(self.recent_losses) > limit

    def _loss_limit(self) -> float | None:
        """The loss over which a step counts as unhealthy (None: no check)."""
        if self.divergence_factor is None or self.initial_loss is None:
            return None
        return self.initial_loss + (self.divergence_factor - 1) * abs(self.initial_loss)

    def _initial_loss(self) -> float | None:
        """The mean loss of the first DIVERGENCE_WINDOW batches (the state carried, as steps 1,
        2, ... see them) at the current weights; nothing changes: the gradients are zeroed and
        the random generators (dropout) set back. None if no batch gave a finite loss."""
        generators = self.model.generators()
        states = {name: generator.bit_generator.state for name, generator in generators.items()}
        losses, carry = [], None
        for index in range(min(DIVERGENCE_WINDOW, self.batches_per_epoch)):
            self.optimizer.zero_grad()
            loss, _, carry = self.task.train_batch(self.model, 0, index, carry)
            losses.append(float(loss))
        self.optimizer.zero_grad()
        for name, generator in generators.items():
            generator.bit_generator.state = states[name]
        finite = [loss for loss in losses if math.isfinite(loss)]
        return sum(finite) / len(finite) if finite else None

    def _fail(self, problem: str, grad_norm: float, since: int | None) -> None:
        """Stop the run as failed at the step being taken; no checkpoint is written after.

        ``since`` is the step whose loss first went wrong (None: the weights are sound, only the
        update failed). The checkpoints from the step before it on hold the weights that made
        those losses and are removed (never step 0's: the initial weights). The message names
        the step, the problem, the step's gradient norm (before clipping; the log never shows a
        failed step), what was removed and the checkpoint a resume would start from.
        """
        self.failed = True
        norm = f"; its gradient norm was {grad_norm:.3g}" if math.isfinite(grad_norm) else ""
        removed, found = [], []
        if self.out_dir is not None:
            directory = self.out_dir / "checkpoints"
            if since is not None:
                removed = checkpoints.remove_from(directory, max(since - 1, 1))
            found = checkpoints.list_checkpoints(directory)
        dropped = (
            f"removed {', '.join(path.name for path in removed)} (written as it went wrong); "
            if removed
            else ""
        )
        kept = (
            f"the last good checkpoint, {found[-1].name}, is kept (a resume, "
            f"{self.resume_how}, goes on from it with the settings it is given)"
            if found
            else "no checkpoint was written"
        )
        self.stop_reason = (
            f"stopped at step {self.step + 1}: {problem}{norm}; {dropped}{kept}; "
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
        early = self.step < self.total_steps  # a stop at the run's end is not early
        if early and self.patience is not None and self.bad_validations >= self.patience:
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
        """Begin a new run: in ``out_dir``, refuse an earlier run's checkpoints (a resume would
        pick theirs, and they would push this run's own out) and drop a log without checkpoints
        (from a run killed before its first one); take the initial loss; write step 0's
        checkpoint."""
        if self.out_dir is not None:
            found = checkpoints.list_checkpoints(self.out_dir / "checkpoints")
            if found:
                raise UserError(
                    f"{self.out_dir} holds checkpoints of an earlier run (newest "
                    f"{found[-1].name}); resume it ({self.resume_how}), give another output "
                    f"directory, or delete {found[-1].parent}"
                )
            (self.out_dir / "metrics.jsonl").unlink(missing_ok=True)
        if self.divergence_factor is not None:
            self.initial_loss = self._initial_loss()
        self.save_checkpoint()

    def _remove_stale_temp_files(self) -> None:
        removed = checkpoints.remove_stale_temp_files(self.out_dir)
        if removed:
            names = ", ".join(path.name for path in removed)
            self.message(f"removed temporary files left by an interrupted write: {names}")

    def _truncate_log(self) -> None:
        """Drop log records after the resumed step (they came from work the kill lost)."""
        drop_records_from(self.out_dir / "metrics.jsonl", self.step + 1)

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
            "initial_loss": self.initial_loss,
            "recent_losses": self.recent_losses,
            "settings": self._settings(),
            "extra": self.extra,
        }
        path = checkpoints.write_checkpoint(
            self.out_dir / "checkpoints", self.step, arrays, state, self.keep_checkpoints
        )
        self.saved_step, self.checkpoint_due = self.step, False
        return path

    def _architecture(self) -> dict:
        """The model's class and constructor arguments, so a checkpoint says what it holds."""
        architecture = {"class": type(self.model).__name__}
        with contextlib.suppress(NotImplementedError):  # a composite such as Sequential
            architecture["config"] = self.model.config()
        return architecture

    def _settings(self) -> dict:
        """The settings a resume may change (see SETTINGS)."""
        return {name: getattr(self, name) for name in SETTINGS}

    def _resume(self) -> None:
        if self.out_dir is None:
            raise UserError("resume needs out_dir: that is where the checkpoints are")
        path, arrays, raw_state = _newest_checkpoint(self.out_dir, self.message)
        self._check_same_run(path, checkpoints.saved_extra(path, raw_state))
        state = checkpoints.checked_state(
            path, raw_state, arrays, self.batches_per_epoch, self.model.generators(), self.monitor
        )
        if state["step"] > self.total_steps:
            raise UserError(
                f"checkpoint {path} is at step {state['step']}, past the end of this run (step "
                f"{self.total_steps}); give more steps to go on from it, or {_AFRESH}"
            )
        try:
            self.model.load_state_dict(checkpoints.split_prefix(arrays, "model"))
            self.optimizer.load_state_dict(
                {**state["optimizer"], **checkpoints.split_prefix(arrays, "optimizer")}
            )
            if self.schedule and state["schedule"] is not None:
                self.schedule.load_state_dict(state["schedule"])
        except UserError as error:
            raise UserError(f"checkpoint {path}: {error}") from None
        checkpoints.restore_generators(self.model.generators(), state["generators"], path)
        self.carry = state["carry"]
        self.step, self.epoch, self.index = state["step"], state["epoch"], state["index"]
        self.best, self.bad_validations = state["best"], state["bad_validations"]
        self.epoch_loss = state["epoch_loss"]
        self.recent_losses = state["recent_losses"][-DIVERGENCE_WINDOW:]
        self.initial_loss = state["initial_loss"]
        if self.initial_loss is None and self.divergence_factor is not None:
            self.initial_loss = self._initial_loss()  # a checkpoint of an older rnnkit
        self.saved_step = self.step
        self._truncate_log()
        self.message(f"resumed from {path} at step {self.step}")
        self._apply_settings(path, state["settings"])

    def _check_same_run(self, path: Path, saved: dict) -> None:
        """UserError unless the checkpoint's ``extra`` (``saved``) is this run's, but for the
        options in RESUMABLE_OPTIONS: other weights, data or batches would silently give the
        saved numbers other meanings."""
        current = _by_content(json.loads(json.dumps(self.extra)))  # tuples as lists, as saved
        saved = _by_content(saved)
        options, saved_options = current.get("options"), saved.get("options")
        both = isinstance(options, dict) and isinstance(saved_options, dict)
        if both:
            names = sorted((set(options) | set(saved_options)) - RESUMABLE_OPTIONS)
            changed = [name for name in names if options.get(name) != saved_options.get(name)]
            if changed:
                shown = ", ".join(
                    f"{name} {_option(options.get(name))} (the run's: "
                    f"{_option(saved_options.get(name))})"
                    for name in changed
                )
                raise UserError(
                    f"cannot resume {path} with other model, data or batch options: {shown}; "
                    f"resume with the run's values (only {', '.join(sorted(RESUMABLE_OPTIONS))} "
                    f"may change), or {_AFRESH}"
                )
        keys = sorted((set(current) | set(saved)) - ({"options"} if both else set()))
        changed = [key for key in keys if current.get(key) != saved.get(key)]
        if changed:
            raise UserError(
                f"cannot resume {path}: it was trained with another {' and '.join(changed)}; "
                f"resume with the same data and options, or {_AFRESH}"
            )

    def _apply_settings(self, path: Path, saved: dict | None) -> None:
        """Use this run's settings where they differ from the checkpoint's, saying so (None: an
        older checkpoint, without its settings)."""
        current = self._settings()
        for name, label in SETTINGS.items():
            if saved is None or saved[name] == current[name]:
                continue
            if name == "lr":
                if self.schedule is not None:
                    raise UserError(
                        f"checkpoint {path} was trained with learning rate {saved['lr']:g}, "
                        f"now {self.lr:g}: with a schedule, the rate is the schedule's; resume "
                        f"with lr {saved['lr']:g}, or {_AFRESH}"
                    )
                self.optimizer.lr = self.lr
            self.message(
                f"{label} {_setting(saved[name])} -> {_setting(current[name])} from now on"
            )


def run_options(out_dir) -> tuple[Path, dict | None]:
    """The newest readable checkpoint of the run in ``out_dir`` and the options the run was
    started with (its ``extra["options"]``; None when it has none); UserError when ``out_dir``
    holds no checkpoint."""
    path, _, state = _newest_checkpoint(Path(out_dir), say=lambda text: None)
    options = checkpoints.saved_extra(path, state).get("options")
    return path, options if isinstance(options, dict) else None


def _newest_checkpoint(out_dir: Path, say) -> tuple[Path, dict, dict]:
    """``checkpoints.read_newest`` of the run in ``out_dir``; UserError when it has none."""
    newest = checkpoints.read_newest(out_dir / "checkpoints", say)
    if newest is None:
        raise UserError(
            f"no checkpoint in {out_dir} to resume from; give the folder of the run to resume, "
            "or train afresh without resuming"
        )
    return newest


def trained_line(summary: dict) -> str:
    """This process's training in a line, from ``Trainer.fit``'s summary: "trained 1200 steps
    in 5m02s (12,700 tokens/s)", or after a resume "resumed at step 1000: trained steps 1001 to
    1200 in 1m01s (12,700 tokens/s)"."""
    run, seconds, resumed_at = summary["steps_run"], summary["seconds"], summary["resumed_at"]
    if run == 0 and resumed_at is not None:
        return (
            f"resumed at step {resumed_at}: no steps left to train (the run had ended; give a "
            "larger --steps or --epochs to train on)"
        )
    speed = f" ({summary['count'] / seconds:,.0f} {summary['unit']}/s)" if seconds > 0 else ""
    took = f"in {format_duration(seconds)}{speed}"
    if resumed_at is None:
        return f"trained {run} steps {took}"
    return (
        f"resumed at step {resumed_at}: trained steps {resumed_at + 1} to {summary['steps']} {took}"
    )


def _by_content(extra: dict) -> dict:
    """``extra`` as a resume compares it: when it identifies its data by content (a ``data``
    entry with a sha256, see ``rnnkit.data.identity``), the data file's name and the path
    options that named it are left out, so a renamed copy of the same data resumes."""
    data = extra.get("data")
    if not (isinstance(data, dict) and data.get("sha256")):
        return extra
    compared = {**extra, "data": {key: value for key, value in data.items() if key != "file"}}
    if isinstance(extra.get("options"), dict):
        compared["options"] = {key: value for key, value in extra["options"].items()
                               if key not in DATA_PATH_OPTIONS}  # fmt: skip
    return compared


def _check_counts(**counts) -> None:
    """TypeError/ValueError unless each count is None or an int >= 1."""
    for name, value in counts.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise UserTypeError(f"Trainer: {name} must be an int or None, got {value!r}")
        if value < 1:
            raise UserError(f"Trainer: {name} must be at least 1, got {value}")


def _option(value) -> str:
    """An option's value as JSON, cut short for a message."""
    text = json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _setting(value) -> str:
    return "none" if value is None else f"{value:g}"


def _first_non_finite(arrays: dict[str, np.ndarray]) -> str | None:
    """The name of the first array holding NaN or inf, None if all are finite."""
    return next((name for name, array in arrays.items() if not np.isfinite(array).all()), None)
