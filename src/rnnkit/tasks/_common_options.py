"""Makers of the options that most training runs have (their defaults differ by task), so that
each is declared, checked and helped once."""

from __future__ import annotations

from rnnkit import _arguments, cells
from rnnkit.tasks._options import option

RUN_LENGTH = "the run's length"


def cell(default: str):
    return option(default, "the recurrent cell", choices=cells.names)


def hidden(default: int):
    return option(default, "hidden units per layer", whole=True, low=1)


def layers(default: int):
    return option(default, "recurrent layers, stacked", whole=True, low=1)


def steps(default: int | None):
    return option(default, "optimizer steps", whole=True, low=1, exclusive=RUN_LENGTH)


def epochs(default: int | None):
    return option(default, "passes over the training data", whole=True, low=1, exclusive=RUN_LENGTH)


def learning_rate(default: float):
    return option(default, "Adam learning rate", above=0, example=f"{default:g}")


def clip(default: float):
    return option(default, "clip the gradient norm to this", above=0, example=f"{default:g}")


def seed():
    return option(
        0, "random seed of the weights, the batches, dropout and samples", whole=True, low=0,
        parse=_arguments.seed,
    )  # fmt: skip


def out(default: str):
    return option(default, "directory for the model, checkpoints, pictures and logs",
                  directory=True)  # fmt: skip


def resume():
    return option(
        False, "go on from the newest checkpoint in --out with the options the run was started "
        "with; only its length, learning rate, clipping and intervals may be given anew",
    )  # fmt: skip


def dropout(default: float, example: str):
    return option(
        default, "probability of zeroing a unit in training, in [0, 1)", low=0, below=1,
        example=example,
    )  # fmt: skip


def batch(default: int):
    return option(default, "examples per optimizer step", whole=True, low=1)


def checkpoint_every(default: int):
    return option(default, "optimizer steps between checkpoints", whole=True, low=1)


def validate_every(default: int):
    return option(default, "optimizer steps between validations", whole=True, low=1)


def val_fraction(default: float):
    return option(default, "share of the examples held out for validation")


def test_fraction(default: float):
    return option(default, "share of the examples held out for the test")
