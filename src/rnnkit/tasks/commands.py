"""The subcommands every task gets: ``train <task>``, ``evaluate`` and ``predict``, built from
the registered tasks' declarations, and the tasks' own subcommands.

``evaluate`` and ``predict`` accept the options of every task; the model file says which task
serves it, and an option that task does not read is refused, naming it.
"""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import replace

from rnnkit import tasks
from rnnkit._command import Command
from rnnkit.errors import UserError
from rnnkit.tasks import pipeline
from rnnkit.tasks._options import Spec, add_arguments, from_arguments, given_names, specs


def commands() -> list[Command]:
    """train, evaluate, predict, then the subcommands the tasks bring."""
    own = [command for task in tasks.names() for command in tasks.get(task).commands]
    return [TRAIN, EVALUATE, PREDICT, *own]


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        f"'rnnkit train' is 'rnnkit train {tasks.DEFAULT}'; its options: "
        f"rnnkit train {tasks.DEFAULT} --help"
    )
    choices = parser.add_subparsers(dest="task", required=True)
    for name in tasks.names():
        task = tasks.get(name)
        # prog: errors read 'rnnkit train: error: ...' for the default task, as the command's do
        prog = "rnnkit train" if name == tasks.DEFAULT else f"rnnkit train {name}"
        add_arguments(choices.add_parser(name, prog=prog, help=task.summary), specs(task.options))


def _train(args: argparse.Namespace) -> None:
    """Train; a resume takes every option not typed from the run (``pipeline.train``)."""
    task = tasks.get(args.task)
    options = from_arguments(args, task.options)
    resume = f"rnnkit train {task.name} --out {shlex.quote(options.out)} --resume"
    summary = pipeline.train(
        task, options, given=given_names(args, task.options), resume_how=resume
    )
    if summary.get("failed"):
        raise SystemExit(1)
    print(task.report(summary))


def _train_label(args: argparse.Namespace) -> str:
    return "train" if args.task == tasks.DEFAULT else f"train {args.task}"


TRAIN = Command(
    "train", f"train a model (default task: {tasks.DEFAULT})", _add_train_arguments, _train,
    _train_label,
)  # fmt: skip


def _every_task(kind: str) -> list[Spec]:
    """The ``kind`` options ("evaluate_options") of all tasks, one per flag, its help naming
    the tasks that read it."""
    merged: dict[str, tuple[Spec, list[str]]] = {}
    for name in tasks.names():
        task = tasks.get(name)
        for spec in getattr(task, kind):
            merged.setdefault(spec.cli_flag, (spec, []))[1].append(f"{task.noun}: {spec.help}")
    return [replace(spec, help="; ".join(helps)) for spec, helps in merged.values()]


def _given(args: argparse.Namespace, task, kind: str) -> dict:
    """The values of ``task``'s ``kind`` options; UserError for another task's option given."""
    own = {spec.name for spec in getattr(task, kind)}
    for spec in _every_task(kind):
        value = getattr(args, spec.name, None)
        if spec.name not in own and value is not None and value != spec.default:
            raise UserError(f"{spec.cli_flag} is not read by a {task.noun}; leave it out")
    given = {}
    for spec in getattr(task, kind):
        value = getattr(args, spec.name, None)
        given[spec.name] = spec.default if value is None else value
        if spec.repeat and value is not None:
            given[spec.name] = tuple(value)
    return given


def _served(args: argparse.Namespace):
    model, extra = pipeline.read_model(args.model)
    every = [tasks.get(name) for name in tasks.names()]
    return pipeline.serving(every, model, extra, args.model), model, extra


def _add_model_arguments(kind: str, json_help: str):
    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("model", help="a model.safetensors written by 'rnnkit train'")
        add_arguments(parser, _every_task(kind))
        parser.add_argument("--json", action="store_true", help=json_help)

    return add


def _evaluate(args: argparse.Namespace) -> None:
    task, model, extra = _served(args)
    given = _given(args, task, "evaluate_options")
    figures, line = task.evaluate(args.model, model, extra, **given)
    print(json.dumps(figures) if args.json else line)


def _predict(args: argparse.Namespace) -> None:
    task, model, extra = _served(args)
    given = _given(args, task, "predict_options")
    results, lines = task.predict(args.model, model, extra, **given)
    print(json.dumps(results) if args.json else "\n".join(lines))


EVALUATE = Command(
    "evaluate",
    "score a trained model: on its test split of a packaged data set by default, of your own "
    "data when you give the training file again",
    _add_model_arguments("evaluate_options", "print one JSON object"),
    _evaluate,
)
PREDICT = Command(
    "predict",
    "classes of texts or sequences, the next values of a series, or a transcription",
    _add_model_arguments("predict_options", "print JSON"),
    _predict,
)
