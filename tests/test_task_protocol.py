"""A new application is one Task and one register call: the command line offers it at once.

The toy task here learns to reverse digit strings ("123" -> "321") with a Seq2Seq model; it is
declared in this file only, and ``rnnkit train``, ``evaluate``, ``predict`` and ``--help`` serve
it without a change to rnnkit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, run_cli
from rnnkit import tasks
from rnnkit.errors import UserError
from rnnkit.models.seq2seq import Seq2Seq, target_mask
from rnnkit.tasks import _common_options as shared
from rnnkit.tasks._options import Options, Spec, option
from rnnkit.tasks._task import Prepared, Task
from rnnkit.train.losses import cross_entropy

DIGITS = "0123456789"  # source ids 0-9; target ids: <s> 0, </s> 1, digit d is d + 2


def digit_strings(count: int, longest: int, seed) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list(DIGITS), rng.integers(2, longest + 1))) for _ in range(count)]


def padded(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(ids (T, B) padded with 0, lengths (B,))."""
    lengths = np.array([len(row) for row in rows])
    ids = np.zeros((lengths.max(), len(rows)), dtype=np.int64)  # (T, B)
    for column, row in enumerate(rows):
        ids[: len(row), column] = row
    return ids, lengths


def reversed_by(model: Seq2Seq, texts: list[str]) -> list[str]:
    source, lengths = padded([[int(digit) for digit in text] for text in texts])
    ids, _ = model.greedy(source, lengths, max_length=2 * source.shape[0] + 2)
    return ["".join(str(index - 2) if index >= 2 else "?" for index in row) for row in ids]


def accuracy(model: Seq2Seq, texts: list[str]) -> float:
    outputs = reversed_by(model, texts)
    return float(np.mean([out == text[::-1] for out, text in zip(outputs, texts, strict=True)]))


class Reversal:
    """The Trainer's task: fresh batches of 32 digit strings, teacher-forced."""

    def __init__(self, longest: int, seed: int) -> None:
        self.longest, self.seed = longest, seed
        self.held_out = digit_strings(100, longest, [seed, 1])

    def batches_per_epoch(self) -> int:
        return 100

    def train_batch(self, model, epoch: int, index: int, carry):
        texts = digit_strings(32, self.longest, [self.seed, 0, epoch, index])
        source, source_lengths = padded([[int(d) for d in text] for text in texts])
        target, target_lengths = padded([[int(d) + 2 for d in text[::-1]] + [1] for text in texts])
        logits, backward = model.forward(source, source_lengths, target)
        loss, d_logits = cross_entropy(logits, target, target_mask(target_lengths, len(target)))
        backward(d_logits)
        return loss, int(target_lengths.sum()), None

    def validate(self, model) -> dict:
        return {"val_loss": 1 - accuracy(model, self.held_out)}


@dataclass
class ReverseOptions(Options):
    longest: int = option(4, "the longest digit string", whole=True, low=2)
    hidden: int = option(32, "hidden units", whole=True, low=1)
    steps: int | None = shared.steps(400)
    epochs: int | None = shared.epochs(None)
    lr: float = shared.learning_rate(1e-2)
    clip: float = shared.clip(5.0)
    seed: int = shared.seed()
    out: str = shared.out("runs/reverse")
    resume: bool = shared.resume()


class Reverse(Task):
    name, noun = "reverse", "digit reverser"
    summary = "reverse strings of digits (a toy)"
    options, model_classes = ReverseOptions, (Seq2Seq,)
    predict_options = (Spec("digits", (), "a digit string", metavar="DIGITS", repeat=True),)

    def prepare(self, options, say) -> Prepared:
        say(f"data: digit strings of 2 to {options.longest} digits")
        model = Seq2Seq(10, 12, 0, 1, 16, options.hidden, seed=options.seed)
        training = Reversal(options.longest, options.seed)
        return Prepared(
            model,
            training,
            {"longest": options.longest},
            {"validate_every": 100, "progress_unit": "tokens"},
        )

    def finish(self, prepared, summary, out) -> dict:
        return {"accuracy": accuracy(prepared.model, prepared.training.held_out)}

    def report(self, summary) -> str:
        return f"reversed {summary['accuracy']:.0%} of the held-out strings"

    def evaluate(self, path, model, extra) -> tuple[dict, str]:
        figures = {"accuracy": accuracy(model, digit_strings(100, extra["longest"], 7))}
        return figures, f"reversed {figures['accuracy']:.0%} of 100 new strings"

    def predict(self, path, model, extra, digits=()) -> tuple[list, list[str]]:
        if not digits or not all(text.isdigit() for text in digits):
            raise UserError("give digit strings to reverse: --digits 123")
        results = reversed_by(model, list(digits))
        return results, [f"{text}\t{out}" for text, out in zip(digits, results, strict=True)]


@pytest.fixture(scope="module")
def toy():
    task = tasks.register(Reverse())
    yield task
    tasks.unregister(task.name)


@pytest.fixture(scope="module")
def trained(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("reverse") / "run"
    from rnnkit.cli import main

    assert main(["train", "reverse", "--out", str(out)]) == 0
    return out / "model.safetensors"


def test_help_lists_the_toy_task_with_its_line(toy, capsys):
    _, out, _ = run_cli(capsys, "train", "--help")
    assert "reverse" in out and "reverse strings of digits (a toy)" in out
    status, out, _ = run_cli(capsys, "train", "reverse", "--help")
    assert status == 0 and out.startswith("usage: rnnkit train reverse")
    assert "--longest" in out and "the longest digit string" in out


def test_train_checks_the_toy_options_in_one_line(toy, capsys, tmp_path):
    result = run_cli(capsys, "train", "reverse", "--longest", 1, "--out", tmp_path / "x")
    assert_one_line_error(result, "rnnkit train reverse", "longest must be a whole number >= 2")
    result = run_cli(capsys, "train", "reverse", "--lr", 0, "--out", tmp_path / "x")
    assert_one_line_error(result, "rnnkit train reverse", "lr must be a finite number > 0")
    assert not (tmp_path / "x").exists()


def test_the_toy_task_trains_evaluates_and_predicts(trained, capsys):
    status, out, err = run_cli(capsys, "evaluate", trained, "--json")
    assert status == 0, err
    assert json.loads(out)["accuracy"] > 0.9
    status, out, err = run_cli(capsys, "predict", trained, "--digits", "1234", "--digits", "907")
    assert status == 0, err
    assert out.splitlines() == ["1234\t4321", "907\t709"]
    result = run_cli(capsys, "predict", trained, "--csv", "x.csv")
    assert_one_line_error(result, "rnnkit predict", "--csv is not read by a digit reverser")
    result = run_cli(capsys, "predict", trained, "--digits", "12a")
    assert_one_line_error(result, "rnnkit predict", "give digit strings to reverse")
