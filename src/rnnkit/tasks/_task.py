"""The task protocol: what an application declares so that one pipeline
(``rnnkit.tasks.pipeline``) and the command line can train, evaluate and predict with it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from rnnkit._command import Command
from rnnkit.errors import UserError
from rnnkit.tasks._options import Options, Spec


@dataclass
class Prepared:
    """A training run made ready by ``Task.prepare``: nothing written yet.

    ``training`` is the Trainer's task (``batches_per_epoch``, ``train_batch``, ``validate``);
    ``extra`` is saved with the model and its checkpoints; ``trainer`` holds the Trainer's
    keyword arguments particular to the task (monitor, mode, progress_unit, callbacks,
    validate_every, ...); with ``keep_best`` the model of the best validation is the one saved;
    ``state`` is whatever ``Task.finish`` needs (the test split, the data); ``units`` gives the
    unit of each quantity the run logs, by its name in ``metrics.jsonl`` ("loss", the training
    loss, and each validation metric; None or absent: unknown), for the axes of ``loss.png``.
    """

    model: object
    training: object
    extra: dict
    trainer: dict = field(default_factory=dict)
    keep_best: bool = False
    state: object = None
    units: dict[str, str | None] = field(default_factory=dict)


class Task(ABC):
    """One application: its options, data, model, metrics, and what it saves.

    Attributes a task sets: ``name`` (``rnnkit train <name>``), ``summary`` (one line of help),
    ``noun`` (what its models are called in messages: "classifier"), ``options`` (an
    ``Options`` dataclass), ``model_classes`` (the classes of the models it saves: a model file
    is served by the task that lists its class), ``evaluate_options`` and ``predict_options``
    (``Spec`` tuples: what ``rnnkit evaluate``/``predict`` read for its models; their values
    come to ``evaluate``/``predict`` as keyword arguments) and ``commands`` (subcommands of its
    own, such as ``generate``).
    """

    name: str
    summary: str
    noun: str
    options: type[Options]
    model_classes: tuple[type, ...]
    evaluate_options: tuple[Spec, ...] = ()
    predict_options: tuple[Spec, ...] = ()
    commands: tuple[Command, ...] = ()

    @abstractmethod
    def prepare(self, options: Options, say) -> Prepared:
        """Read and check the data, build the model and the Trainer's task; ``say`` prints a
        line about the data. Writes nothing."""

    @abstractmethod
    def finish(self, prepared: Prepared, summary: dict, out: Path) -> dict:
        """After training (the model in ``prepared.model``, before it is saved to ``out``): the
        held-out figures and pictures, as entries for the run's summary. May add to
        ``prepared.extra``."""

    @abstractmethod
    def report(self, summary: dict) -> str:
        """What ``rnnkit train`` prints at the end of a run."""

    def evaluate(self, path, model, extra, **given) -> tuple[dict, str]:
        """``(figures, one line for people)`` of the model read from ``path``."""
        raise UserError(f"a {self.noun} is not evaluated by rnnkit evaluate")

    def predict(self, path, model, extra, **given) -> tuple[list, list[str]]:
        """``(results, one line per result for people)`` of the model read from ``path``."""
        raise UserError(f"a {self.noun} makes no predictions with rnnkit predict")
