"""One pipeline for every task: train, evaluate and predict.

Training checks the options, lets the task prepare its data and model (nothing written yet),
fits with the Trainer (Adam, gradient clipping, checkpoints and the metrics log in ``out``),
keeps the best model when the task asks, lets the task score the held-out data, and saves
``model.safetensors`` (with the task's ``extra``) and ``loss.png``.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from rnnkit.errors import UserError
from rnnkit.io.files import regular_file
from rnnkit.tasks._task import Task

MODEL_FILE = "model.safetensors"


def train(task: Task, options, say=print, *, given=None, resume_how="resume=True") -> dict:
    """Train ``task``'s model as ``options`` say; returns the Trainer's summary with
    ``model_path`` and the task's held-out figures. Every option and the data are checked
    before anything is written to ``options.out``.

    With ``options.resume``, the run in ``options.out`` goes on from its newest checkpoint (a
    UserError when there is none) with the options it was started with: each option not in
    ``given`` (the names the caller set; None: those that differ from their defaults) takes the
    run's value. A given option that differs from the run's is refused, naming it, unless a
    resume may change it (``RESUMABLE_OPTIONS``: lr, clip, steps, epochs, validate_every,
    checkpoint_every). ``resume_how`` is how the caller's user resumes this run, for messages
    (the command line gives its command).
    """
    from rnnkit.io.models import load_with_extra, save
    from rnnkit.train.optim import Adam
    from rnnkit.train.plots import plot_history
    from rnnkit.train.trainer import Trainer, run_options

    options.check()
    if options.resume:
        path, saved = run_options(options.out)
        if saved is not None:
            _check_task(task, saved, options.out)
            try:
                options = options.resumed(saved, given)
                options.check()
            except UserError as error:
                raise UserError(
                    f"cannot resume {path} with these options: {error}; resume with the run's "
                    "own, or train afresh into another output directory"
                ) from None
    prepared = task.prepare(options, say)
    model, out = prepared.model, Path(options.out)
    trainer = Trainer(
        model, Adam(model, lr=options.lr), prepared.training, out_dir=out, steps=options.steps,
        epochs=options.epochs, clip_norm=options.clip, extra=prepared.extra,
        resume_how=resume_how, **prepared.trainer,
    )  # fmt: skip
    summary = trainer.fit(resume=options.resume)
    if summary["failed"]:
        return summary
    if prepared.keep_best and summary["best"] is not None:
        best, _ = load_with_extra(out / "best.safetensors")
        model.load_state_dict(best.params)
    summary.update(task.finish(prepared, summary, out))
    save(model, out / MODEL_FILE, extra={**prepared.extra, "task": task.name})
    plot_history(out / "metrics.jsonl", out / "loss.png")
    summary["model_path"] = str(out / MODEL_FILE)
    return summary


def _check_task(task: Task, saved: dict, out) -> None:
    """UserError when the run in ``out``, whose options were ``saved``, is another registered
    task's (its options are named as that task's are): the likeliest slip of a resume."""
    from rnnkit import tasks

    def named_as(other: Task) -> bool:
        return set(saved) == {item.name for item in fields(other.options)}

    if named_as(task):
        return
    for name in tasks.names():
        other = tasks.get(name)
        if named_as(other):
            raise UserError(
                f"the run in {out} trains a {other.noun} (task {name!r}), not a {task.noun}; "
                f"resume it with its task, {name!r}"
            )


def model_file(name) -> Path:
    """``name`` as a Path when it is a regular file, or the run's model when ``name`` is a run
    folder that holds one; one-line errors name what it is instead."""
    if Path(name).is_dir() and (Path(name) / MODEL_FILE).is_file():
        name = Path(name) / MODEL_FILE
    return regular_file(name, "the model", f"a {MODEL_FILE} written by 'rnnkit train'")


def read_model(path) -> tuple[object, object]:
    """``(model, extra)`` from the file at ``path``; one-line errors for a missing file, a
    directory or a file that is not an rnnkit model."""
    from rnnkit.io.models import load_with_extra

    return load_with_extra(model_file(path))


def serving(tasks, model, extra, path) -> Task:
    """The task among ``tasks`` that saved ``model`` with ``extra``: the one its "task" entry
    names, or (a file without one) the first whose models are of ``model``'s class."""
    named = extra.get("task") if isinstance(extra, dict) else None
    for task in tasks:
        if task.name == named and type(model) in task.model_classes:
            return task
    for task in tasks:
        if type(model) in task.model_classes:
            return task
    raise UserError(
        f"{path} holds a {type(model).__name__}, which the rnnkit command does not serve; "
        "give a model written by 'rnnkit train'"
    )
