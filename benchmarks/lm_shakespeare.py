"""RNN, GRU and LSTM language models on Shakespeare, with equal parameters and equal time.

Every cell trains on the corpus and split of ``rnnkit train`` (Shakespeare's plays, the last 5%
of the characters held out) with its settings (embedding 64, 2 layers, windows of 100 characters,
32 streams, Adam 2e-3, clipping at 5). The LSTM has ``--hidden`` units per layer; each other cell
gets the hidden size whose parameter count is closest to the LSTM's. Each cell then trains for
the same wall-clock time, ``--minutes``, and is scored once on the whole held-out text. Prints a
Markdown table: cell, hidden size, parameters, steps done, validation loss and bits per character.

    python benchmarks/lm_shakespeare.py                 # 3 x 5 minutes, plus scoring
    python benchmarks/lm_shakespeare.py --minutes 0.05 --max-chars 200000   # a quick check
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from rnnkit.tasks.language_modeling import (
    LanguageModelOptions,
    LanguageModelTask,
    build_model,
    load_corpus,
    prepare_data,
)
from rnnkit.train.optim import Adam
from rnnkit.train.trainer import Trainer

MAX_STEPS = 10**9  # the run ends when its time is up, long before this


class TimeBudget:
    """Trainer callback: stops the run after the first step that ends ``seconds`` or more after
    the callback was made."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()

    def on_step(self, trainer, record: dict) -> None:
        if time.perf_counter() - self.start >= self.seconds:
            trainer.stop_reason = f"the time budget of {self.seconds:g} s is used up"


def parameter_count(options: LanguageModelOptions, vocab_size: int) -> int:
    model = build_model(options, vocab_size)
    return sum(array.size for array in model.params.values())


def matched_hidden(options: LanguageModelOptions, vocab_size: int, target: int) -> int:
    """The hidden size whose model has the parameter count closest to ``target``."""
    low, high = 1, 1
    while parameter_count(replace(options, hidden=high), vocab_size) < target:
        low, high = high, 2 * high
    while high - low > 1:  # the count grows with the hidden size: bisect to count(low) < target
        middle = (low + high) // 2
        if parameter_count(replace(options, hidden=middle), vocab_size) < target:
            low = middle
        else:
            high = middle
    gaps = {hidden: abs(parameter_count(replace(options, hidden=hidden), vocab_size) - target)
            for hidden in (low, high)}  # fmt: skip
    return min(gaps, key=gaps.get)


def train_for(options: LanguageModelOptions, data, seconds: float) -> dict:
    """Train one model for ``seconds`` of wall-clock time; score it on the held-out text."""
    model = build_model(options, len(data.vocabulary))
    task = LanguageModelTask(
        data.train_ids, data.val_ids, options.batch, options.seq_len, data.tokens_per_char()
    )
    trainer = Trainer(
        model,
        Adam(model, lr=options.lr),
        task,
        steps=MAX_STEPS,
        clip_norm=options.clip,
        validate_every=MAX_STEPS,  # no validation inside the budget: each cell scores once, after
        callbacks=[TimeBudget(seconds)],
        progress=False,
    )
    summary = trainer.fit()
    if summary["failed"]:
        raise RuntimeError(f"the {options.cell} run failed: {summary['stop_reason']}")
    return {"steps": summary["steps"], **task.validate(model)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="training time per cell")
    parser.add_argument("--hidden", type=int, default=256, help="the LSTM's hidden size")
    parser.add_argument("--cells", nargs="+", default=["rnn", "gru", "lstm"])
    parser.add_argument("--max-chars", type=int, default=None, help="use the corpus' start only")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    options = LanguageModelOptions(hidden=args.hidden, steps=MAX_STEPS, seed=args.seed)
    options.check()
    text, source = load_corpus(options)
    text = text[: args.max_chars]
    data = prepare_data(text, options)
    vocab_size = len(data.vocabulary)
    print(
        f"{source}: {len(text):,} characters, {len(data.train_ids):,} training and "
        f"{len(data.val_ids):,} held-out; {vocab_size} symbols; {args.minutes:g} minutes per cell",
        flush=True,
    )
    target = parameter_count(replace(options, cell="lstm"), vocab_size)
    rows = []
    for cell in args.cells:
        cell_options = replace(options, cell=cell)
        if cell != "lstm":
            cell_options = replace(
                cell_options, hidden=matched_hidden(cell_options, vocab_size, target)
            )
        count = parameter_count(cell_options, vocab_size)
        print(f"{cell}: hidden {cell_options.hidden}, {count:,} parameters ...", flush=True)
        result = train_for(cell_options, data, 60 * args.minutes)
        print(f"{cell}: {result['steps']:,} steps, validation loss {result['val_loss']:.4f}")
        rows.append((cell, cell_options.hidden, count, result))

    print(f"\n| cell | hidden | parameters | steps in {args.minutes:g} min | "
          "validation loss (nats/char) | bits per char |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for cell, hidden, count, result in rows:
        share = f"{100 * (count / target - 1):+.1f}%"
        print(
            f"| {cell} | {hidden} | {count:,} ({share}) | {result['steps']:,} | "
            f"{result['val_loss']:.4f} | {result['val_bits_per_char']:.3f} |"
        )


if __name__ == "__main__":
    main()
