"""One pipeline for every task: train, evaluate and predict.

Training checks the options, lets the task prepare its data and model (nothing written yet),
fits with the Trainer (Adam, gradient clipping, checkpoints and the metrics log in ``out``),
keeps the best model when the task asks, lets the task score the held-out data, and saves
``model.safetensors`` (with the task's ``extra``) and ``loss.png``.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import NoReturn

from rnnkit.errors import UserError
from rnnkit.io.files import regular_file
from rnnkit.io.models import RUN_MODEL as MODEL_FILE
from rnnkit.tasks._task import Task


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
    plot_history(
        out / "metrics.jsonl", out / "loss.png", prepared.units, f"rnnkit train {task.name} — {out}"
    )
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
    folder that holds one; one-line errors name what it is instead (a run folder whose run has
    not saved its model yet, any other folder)."""
    folder = Path(name)
    if folder.is_dir():
        if (folder / MODEL_FILE).is_file():
            return folder / MODEL_FILE
        _refuse_folder(folder)
    return regular_file(name, "the model", f"a {MODEL_FILE} written by 'rnnkit train'")


def _refuse_folder(folder: Path) -> NoReturn:
    """UserError for a folder without a model given as one: a run that has not finished (it has
    checkpoints), or a folder that is no run."""
    from rnnkit.train.checkpoints import list_checkpoints

    checkpoints = list_checkpoints(folder / "checkpoints")
    if checkpoints:
        raise UserError(
            f"the run folder {folder} holds no {MODEL_FILE} yet: its run has not finished "
            f"(newest checkpoint: {checkpoints[-1].name}); if it stopped, finish it with "
            f"'rnnkit train ... --out {folder} --resume'"
        )
    raise UserError(
        f"the model {folder} is a directory without a {MODEL_FILE}; give the folder of a run "
        f"(the --out of 'rnnkit train') or the {MODEL_FILE} in it"
    )


def read_model(path) -> tuple[object, object]:
    """``(model, extra)`` from the file at ``path``; one-line errors for a missing file, a
    directory or a file that is not an rnnkit model."""
    from rnnkit.io.models import load_with_extra

    return load_with_extra(model_file(path))


def serving(tasks, model, extra, path) -> Task:
    """The task among ``tasks`` that saved ``model`` with ``extra``: the one its "task" entry
    names, or (a file without one, such as a run's best.safetensors) the first whose models are
    of ``model``'s class. UserError for a model no task trains."""
    named = extra.get("task") if isinstance(extra, dict) else None
    for task in tasks:
        if task.name == named and type(model) in task.model_classes:
            return task
    for task in tasks:
        if type(model) in task.model_classes:
            return task
    trained = ", ".join(f"a {task.noun} ({task.name})" for task in tasks)
    raise UserError(
        f"{path} holds a {type(model).__name__}, a model 'rnnkit train' does not make (it "
        f"makes {trained}); load this one in Python with rnnkit.load, or give a model written "
        "by 'rnnkit train TASK'"
    )


def require(wanted: Task, model, extra, path) -> None:
    """UserError unless ``model`` (read from ``path`` with ``extra``) is one of ``wanted``'s
    models; the message names the task whose model it is and the one needed."""
    from rnnkit import tasks

    if type(model) in wanted.model_classes:
        return
    every = [tasks.get(name) for name in tasks.names()]
    found = serving(every, model, extra, path)
    raise UserError(
        f"{path} holds a {found.noun} (made by 'rnnkit train {found.name}'), not a "
        f"{wanted.noun}; give one made by 'rnnkit train {wanted.name}'"
    )
