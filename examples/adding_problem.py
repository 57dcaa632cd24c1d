"""The adding problem (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015).

Each input is a sequence of T steps with two features: a value drawn uniformly from [0, 1] and a
marker that is 1 at exactly two steps, one in each half of the sequence, and 0 elsewhere. The
target is the sum of the two marked values. Always predicting 1 (the mean of the sum) gives a
mean squared error of about 0.167: a model beats that only by carrying the first marked value
across up to T steps, which is what plain RNNs fail to do and LSTMs and GRUs manage.

    python examples/adding_problem.py --cell lstm --length 50 --steps 3000

The last line printed is ``test_mse: <value>`` on a fresh test batch of 1,000 sequences.
"""

from __future__ import annotations

import argparse

import numpy as np

import rnnkit
from rnnkit import cells
from rnnkit.nn.module import Module
from rnnkit.train.losses import mse
from rnnkit.train.optim import Adam
from rnnkit.train.trainer import Trainer


def adding_batch(rng: np.random.Generator, batch: int, length: int):
    """Inputs (T, B, 2) float32 and targets (B, 1): the sum of the two marked values."""
    values = rng.uniform(0.0, 1.0, (length, batch))
    half = length // 2
    first = rng.integers(0, half, batch)  # one marker in each half
    second = rng.integers(half, length, batch)
    markers = np.zeros((length, batch))
    markers[first, np.arange(batch)] = 1.0
    markers[second, np.arange(batch)] = 1.0
    inputs = np.stack([values, markers], axis=2).astype(np.float32)  # (T, B, 2)
    targets = (values * markers).sum(axis=0)[:, None].astype(np.float32)  # (B, 1)
    return inputs, targets


class LastStepRegressor(Module):
    """A recurrent layer read out by a Linear layer at the last step (many-to-one)."""

    def __init__(self, cell: str, hidden: int, seed: int) -> None:
        super().__init__()
        self.rnn = self._add_child("rnn", rnnkit.Recurrent(cell, 2, hidden, seed=seed))
        self.head = self._add_child("head", rnnkit.Linear(hidden, 1, seed=seed + 1))

    def __call__(self, inputs):
        output, _ = self.rnn(inputs)
        return self.head(output[-1])

    def forward(self, inputs):
        (output, _), rnn_backward = self.rnn.forward(inputs)
        prediction, head_backward = self.head.forward(output[-1])  # (B, 1)

        def backward(d_prediction):
            d_output = np.zeros(output.shape, dtype=output.dtype)  # (T, B, H)
            d_output[-1] = head_backward(d_prediction)
            rnn_backward(d_output)

        return prediction, backward


class AddingTask:
    """Fresh random batches: batch ``index`` of ``epoch`` is drawn from its own seeded stream."""

    def __init__(self, batch: int, length: int, seed: int) -> None:
        self.batch, self.length, self.seed = batch, length, seed
        self.validation = adding_batch(np.random.default_rng([seed, 2**31]), 1000, length)

    def batches_per_epoch(self) -> int:
        return 1000

    def train_batch(self, model, epoch: int, index: int, carry):
        rng = np.random.default_rng([self.seed, epoch, index])
        inputs, targets = adding_batch(rng, self.batch, self.length)
        prediction, backward = model.forward(inputs)
        loss, d_prediction = mse(prediction, targets)
        backward(d_prediction)
        return loss, self.batch, None

    def validate(self, model) -> dict[str, float]:
        inputs, targets = self.validation
        return {"val_mse": mse(model(inputs), targets)[0]}


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", choices=cells.names(), default="lstm")
    parser.add_argument("--length", type=int, default=50, help="sequence length T")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--validate-every", type=int, default=250)
    parser.add_argument("--target", type=float, default=None,
                        help="stop once the validation MSE is below this")  # fmt: skip
    args = parser.parse_args(argv)

    model = LastStepRegressor(args.cell, args.hidden, args.seed)
    task = AddingTask(args.batch, args.length, args.seed)
    callbacks = []
    if args.target is not None:
        callbacks.append(StopBelow(args.target))
    trainer = Trainer(
        model, Adam(model, lr=args.lr), task, steps=args.steps, clip_norm=args.clip,
        validate_every=args.validate_every, monitor="val_mse", callbacks=callbacks,
        progress=False,
    )  # fmt: skip
    summary = trainer.fit()
    inputs, targets = adding_batch(np.random.default_rng([args.seed, 2**32]), 1000, args.length)
    test_mse = mse(model(inputs), targets)[0]
    print(f"steps: {summary['steps']}")
    print(f"test_mse: {test_mse:.5f}")
    return test_mse


class StopBelow:
    """A callback that ends the run once the validation MSE is below ``target``."""

    def __init__(self, target: float) -> None:
        self.target = target

    def on_validation(self, trainer, record) -> None:
        if record["val_mse"] < self.target:
            trainer.stop_reason = f"val_mse {record['val_mse']:.5f} < {self.target}"


if __name__ == "__main__":
    main()
