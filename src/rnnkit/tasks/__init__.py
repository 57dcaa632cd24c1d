"""Applications: each a ``Task`` (``rnnkit.tasks._task``) that one pipeline trains, evaluates and
predicts with, and that the command line offers as ``rnnkit train <name>``.

The built-in tasks are listed in ``_built_in``; ``register`` adds another (a test's toy task,
a user's application) without touching the command line.
"""

from __future__ import annotations

from rnnkit.errors import UserError
from rnnkit.tasks._task import Task

DEFAULT = "lm"  # 'rnnkit train' without a task name trains this one
_registry: dict[str, Task] = {}


def _built_in() -> tuple[Task, ...]:
    from rnnkit.tasks import classification, forecasting, language_modeling, seq2seq, speech

    return (
        language_modeling.TASK, classification.TASK, forecasting.TASK, seq2seq.TASK, speech.TASK
    )  # fmt: skip


def _tasks() -> dict[str, Task]:
    if not _registry:
        for task in _built_in():
            _registry[task.name] = task
    return _registry


def register(task: Task) -> Task:
    """Offer ``task`` to the pipeline and the command line under ``task.name``."""
    if not isinstance(task, Task):
        raise UserError(f"register takes a Task, got {task!r}")
    known = _tasks().get(task.name)
    if known is not None and known is not task:
        raise UserError(f"a task named {task.name!r} is already registered; rename one of them")
    _registry[task.name] = task
    return task


def unregister(name: str) -> None:
    """Take the task ``name`` away again (a test's toy task)."""
    _tasks().pop(name, None)


def names() -> list[str]:
    """The registered tasks' names, the built-in ones first."""
    return list(_tasks())


def get(name: str) -> Task:
    """The task registered as ``name``."""
    if name not in _tasks():
        raise UserError(f"no task is named {name!r}; the tasks are {names()}")
    return _tasks()[name]
