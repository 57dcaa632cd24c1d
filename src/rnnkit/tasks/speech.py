"""Speech recognition: spoken digit strings, synthesised offline by espeak-ng, recognised by a
bidirectional recurrent network over log-mel frames trained with CTC (Graves et al. 2006).

The utterances are made by ``rnnkit.speech.digits`` from the run's seed: the training,
validation and test splits are spoken by different espeak-ng voice variants, so the test voices
are never heard in training. The model file keeps the label names, the feature settings and
the data's recipe (seed, counts, espeak-ng's version), so that ``rnnkit evaluate`` rebuilds the
same held-out utterances.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rnnkit.errors import UserError
from rnnkit.io._schema import Fields
from rnnkit.models.recogniser import SpeechRecogniser
from rnnkit.speech import espeak
from rnnkit.speech.augment import random_factors, warp_frequencies
from rnnkit.speech.spoken_digits import (
    BLANK,
    LABELS,
    Recipe,
    audio_features,
    labels_to_digits,
    plan,
    spoken_digit_features,
)
from rnnkit.speech.wav import read_wav
from rnnkit.tasks import _common_options as shared
from rnnkit.tasks._options import Options, Spec, option
from rnnkit.tasks._task import Prepared, Task
from rnnkit.train.batching import epoch_batches
from rnnkit.train.ctc import ctc_loss
from rnnkit.train.ctc_decoding import beam_decode, greedy_decode
from rnnkit.train.metrics import sequence_scores
from rnnkit.train.trainer import trained_line

HOP_SECONDS = 0.01  # between feature frames (spoken_digits.audio_features)
CHUNK = 128  # utterances per inference batch
UNITS = {  # of what training logs; CTC's mean divides each utterance's loss by its digits
    "loss": "nats per digit", "val_loss": "nats per digit",
    "val_digit_error_rate": "edits per reference digit",
    "val_string_accuracy": "share of strings right (0-1)",
}  # fmt: skip


@dataclass
class SpeechOptions(Options):
    """Everything ``rnnkit train speech`` can set; the defaults train in about 10 minutes on
    2 cores."""

    train_utterances: int = option(8000, "synthesised training utterances", whole=True, low=1)
    val_utterances: int = option(400, "validation utterances (other voices)", whole=True, low=1)
    test_utterances: int = option(1000, "test utterances (voices never heard)", whole=True, low=1)
    min_digits: int = option(1, "the shortest digit string", whole=True, low=1)
    max_digits: int = option(7, "the longest digit string", whole=True, low=1)
    warp: float = option(
        0.25, "in training, scale each utterance's frequencies by a random factor from "
        "1/(1 + this) to 1 + this (vocal tract length perturbation; 0: none)", low=0, below=1,
        example="0.25",
    )  # fmt: skip
    stack: int = option(3, "10 ms frames per recurrent step (subsampling)", whole=True, low=1)
    cell: str = shared.cell("gru")
    hidden: int = shared.hidden(128)
    layers: int = shared.layers(2)
    dropout: float = shared.dropout(0.1, example="0.1")
    batch: int = shared.batch(32)
    steps: int | None = shared.steps(4000)
    epochs: int | None = shared.epochs(None)
    lr: float = shared.learning_rate(2e-3)
    clip: float = shared.clip(5.0)
    validate_every: int = shared.validate_every(250)
    checkpoint_every: int = shared.checkpoint_every(250)
    seed: int = shared.seed()
    out: str = shared.out("runs/speech")
    resume: bool = shared.resume()

    def check_together(self) -> None:
        if self.min_digits > self.max_digits:
            raise UserError(
                f"min_digits ({self.min_digits}) is above max_digits ({self.max_digits}); "
                "give min_digits <= max_digits"
            )


@dataclass
class Utterances:
    """Log-mel frames and digit labels of N utterances."""

    frames: list[np.ndarray]  # each (T_i, num_mels) float32
    labels: list[np.ndarray]  # each (S_i,) int64 in 1..10 (digit + 1)
    voices: list[str]

    def __len__(self) -> int:
        return len(self.frames)

    def batch(self, indices, change=None):
        """``(x (T, B, num_mels), lengths (B,), targets (B, S), target_lengths (B,))``; each
        utterance's frames pass through ``change(column, frames)`` first when given."""
        lengths = np.array([len(self.frames[i]) for i in indices], dtype=np.int64)
        target_lengths = np.array([len(self.labels[i]) for i in indices], dtype=np.int64)
        x = np.zeros((lengths.max(), len(indices), self.frames[indices[0]].shape[1]), np.float32)
        targets = np.zeros((len(indices), target_lengths.max()), dtype=np.int64)
        for column, index in enumerate(indices):
            frames = self.frames[index]
            x[: lengths[column], column] = frames if change is None else change(column, frames)
            targets[column, : target_lengths[column]] = self.labels[index]
        return x, lengths, targets, target_lengths


def synthesised(split: str, count: int, data: dict) -> Utterances:
    """``count`` utterances of ``split`` made as ``data`` (``data_recipe``) says."""
    recipe = recipe_of(data)
    frames, labels = spoken_digit_features(split, count, seed=data["seed"], recipe=recipe)
    voices = [
        f"{u.accent}+{u.variant}" for u in plan(split, count, seed=data["seed"], recipe=recipe)
    ]
    return Utterances(frames, labels, voices)


def recipe_of(data: dict) -> Recipe:
    """The ``Recipe`` saved in ``data`` (JSON lists back to tuples)."""
    return Recipe(**{key: tuple(value) if isinstance(value, list) else value
                     for key, value in data["recipe"].items()})  # fmt: skip


def heard_batches(model, utterances: Utterances, indices, beam: int = 1):
    """The model on the utterances at ``indices``, in batches of up to ``CHUNK`` of similar
    length. Yields ``(positions, heard, logits, output_lengths, targets, target_lengths)`` per
    batch: ``positions`` index ``indices``; ``heard`` holds the label sequences (1..10) decoded
    from ``logits`` (T', b, C), greedy (``beam`` 1) or by prefix beam search."""
    order = np.argsort([len(utterances.frames[i]) for i in indices], kind="stable")
    for start in range(0, len(order), CHUNK):
        positions = order[start : start + CHUNK]
        x, lengths, targets, target_lengths = utterances.batch([indices[i] for i in positions])
        logits, output_lengths = model(x, lengths), model.output_lengths(lengths)
        if beam == 1:
            heard = greedy_decode(logits, output_lengths, blank=BLANK)
        else:
            heard = beam_decode(logits, output_lengths, blank=BLANK, beam_width=beam)
        yield positions, heard, logits, output_lengths, targets, target_lengths


def transcribe(model, utterances: Utterances, indices, beam: int = 1) -> list[list[int]]:
    """The label sequences (1..10) the model hears in the utterances at ``indices``."""
    decoded: list[list[int]] = [None] * len(indices)
    for positions, heard, *_ in heard_batches(model, utterances, indices, beam):
        for position, labels in zip(positions, heard, strict=True):
            decoded[position] = labels
    return decoded


def label_probabilities(model, utterances: Utterances, index: int) -> np.ndarray:
    """(T', num_labels) softmax of the model's logits over utterance ``index``'s output frames."""
    [(_, _, logits, output_lengths, _, _)] = heard_batches(model, utterances, [index])
    frames = logits[: output_lengths[0], 0]  # (T', C)
    shifted = np.exp(frames - frames.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def score(model, utterances: Utterances, indices=None, beam: int = 1) -> dict:
    """digit_error_rate, string_accuracy and the number of utterances and voices."""
    indices = list(range(len(utterances))) if indices is None else list(indices)
    predicted = transcribe(model, utterances, indices, beam)
    scores = sequence_scores(predicted, [list(utterances.labels[i]) for i in indices])
    return {
        "digit_error_rate": float(scores["error_rate"]),
        "string_accuracy": float(scores["sequence_accuracy"]),
        "utterances": scores["sequences"],
        "voices": len({utterances.voices[i] for i in indices}),
    }


class SpeechTask:
    """Shuffled minibatches of the training utterances (seeded per epoch), each utterance's
    frequencies warped by a random factor from 1/(1 + ``warp``) to 1 + ``warp`` (seeded per
    batch), CTC on the logits; validation loss, digit error rate and string accuracy (greedy)
    on the validation voices."""

    def __init__(
        self, train: Utterances, val: Utterances, batch_size: int, seed: int, warp: float, rate: int
    ) -> None:
        self.train, self.val, self.batch_size, self.seed = train, val, batch_size, seed
        self.warp, self.rate = warp, rate

    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.train) / self.batch_size)

    def train_batch(self, model, epoch: int, index: int, carry):
        chosen = epoch_batches(len(self.train), self.batch_size, self.seed, epoch)[index]
        change = None
        if self.warp > 0:
            rng = np.random.default_rng([self.seed, epoch, index])
            factors = random_factors(len(chosen), self.warp, rng)

            def change(column, frames):
                return warp_frequencies(frames, factors[column], self.rate)

        x, lengths, targets, target_lengths = self.train.batch(chosen, change)
        logits, backward = model.forward(x, lengths)
        loss, d_logits = ctc_loss(
            logits, targets, model.output_lengths(lengths), target_lengths, blank=BLANK
        )
        backward(d_logits)
        return loss, len(chosen), None

    def validate(self, model) -> dict[str, float]:
        indices = list(range(len(self.val)))
        decoded, total = [None] * len(indices), 0.0
        for positions, heard, logits, output_lengths, targets, target_lengths in heard_batches(
            model, self.val, indices
        ):
            loss, _ = ctc_loss(
                logits, targets, output_lengths, target_lengths, blank=BLANK, reduction="sum"
            )
            total += loss
            for position, labels in zip(positions, heard, strict=True):
                decoded[position] = labels
        scores = sequence_scores(decoded, [list(labels) for labels in self.val.labels])
        return {
            "val_loss": total / sum(len(labels) for labels in self.val.labels),
            "val_digit_error_rate": scores["error_rate"],
            "val_string_accuracy": scores["sequence_accuracy"],
        }


def data_recipe(options: SpeechOptions) -> dict:
    """What remakes the run's utterances: saved with the model as its "data"."""
    recipe = Recipe(digit_counts=(options.min_digits, options.max_digits))
    return {
        "kind": "spoken digits",
        "espeak_ng": espeak.version(),
        "seed": options.seed,
        "recipe": dataclasses.asdict(recipe),
        "test_utterances": options.test_utterances,
    }


def saved_data(model: SpeechRecogniser, extra) -> dict:
    """The checked "data" of a speech model's saved extra (``data_recipe``), with its labels
    and features matching the model; a one-line UserError names the first bad field."""
    fields = Fields(extra, "the model file's saved extra", "re-train the model")
    fields.get("task", str, choices=["speech"])
    labels = fields.get("labels", list, items=str, low=model.num_labels, high=model.num_labels)
    if labels != list(LABELS):
        fields.fail("labels", f"are {labels}, not the blank and the ten digits")
    data = {
        "kind": fields.get("data.kind", str, choices=["spoken digits"]),
        "espeak_ng": fields.get("data.espeak_ng", str),
        "seed": fields.get("data.seed", int, low=0),
        "recipe": fields.get("data.recipe", dict),
        "test_utterances": fields.get("data.test_utterances", int, low=1),
    }
    try:
        recipe = recipe_of(data)
    except (TypeError, UserError) as error:
        fields.fail("data.recipe", f"does not describe spoken digits ({error})")
    if recipe.num_mels != model.input_size:
        fields.fail("data.recipe.num_mels", f"is not the model's input_size {model.input_size}")
    return data


def draw_frames(model, frames, probabilities, path, title: str) -> bool:
    """The spectrogram of one utterance with ``model``'s per-frame label probabilities under it;
    False without matplotlib."""
    from rnnkit.speech.plot import plot_frames

    seconds_per_step = model.stack * HOP_SECONDS
    return plot_frames(frames, probabilities, LABELS, seconds_per_step, path, title)


BEAM = Spec("beam", 1, "CTC prefix beam width; 1: greedy (best path)", whole=True, low=1)


class SpeechRecognition(Task):
    """Spoken digit strings, trained with CTC on synthesised voices and scored on voices never
    heard: the validation of the lowest digit error rate is kept."""

    name = "speech"
    summary = "speech recognition of spoken digits (CTC)"
    noun = "speech recogniser"
    options = SpeechOptions
    model_classes = (SpeechRecogniser,)
    evaluate_options = (BEAM,)
    predict_options = (
        Spec("wavs", (), "a 16-bit PCM WAV file to transcribe (repeatable)", flag="--wav",
             metavar="FILE", repeat=True),
        BEAM,
        Spec("plot", None, "draw the spectrogram and label probabilities of the (first) WAV",
             metavar="PNG"),
    )  # fmt: skip

    def prepare(self, options: SpeechOptions, say) -> Prepared:
        data = data_recipe(options)
        train = synthesised("train", options.train_utterances, data)
        val = synthesised("val", options.val_utterances, data)
        test = synthesised("test", options.test_utterances, data)
        seconds = sum(len(frames) for frames in train.frames) * HOP_SECONDS
        say(
            f"data: spoken digit strings by espeak-ng {data['espeak_ng']}: "
            f"{len(train):,} train ({seconds / 60:.0f} min of speech, "
            f"{len(set(train.voices))} voices), {len(val)} validation "
            f"({len(set(val.voices))} other voices), {len(test)} test "
            f"({len(set(test.voices))} voices never heard)"
        )
        model = SpeechRecogniser(
            len(LABELS), input_size=recipe_of(data).num_mels, stack=options.stack,
            hidden_size=options.hidden, num_layers=options.layers, cell=options.cell,
            dropout=options.dropout, seed=options.seed,
        )  # fmt: skip
        extra = {
            "labels": list(LABELS),
            "data": data,
            "options": asdict(options),
        }
        return Prepared(
            model,
            SpeechTask(train, val, options.batch, options.seed, options.warp, recipe_of(data).rate),
            extra,
            trainer={
                "monitor": "val_digit_error_rate",
                "mode": "min",
                "progress_unit": "utterances",
                "validate_every": options.validate_every,
                "checkpoint_every": options.checkpoint_every,
            },
            keep_best=True,
            state=test,
            units=UNITS,
        )

    def finish(self, prepared: Prepared, summary: dict, out: Path) -> dict:
        """The test figures (greedy; saved with the model) and ``frames.png`` of one test
        utterance."""
        test = prepared.state
        report = score(prepared.model, test)
        prepared.extra["test"] = report
        probabilities = label_probabilities(prepared.model, test, 0)
        [heard] = transcribe(prepared.model, test, [0])
        png = out / "frames.png"
        title = (
            f"test utterance 1 ({test.voices[0]}): said {labels_to_digits(test.labels[0])}, "
            f"heard {labels_to_digits(heard) or 'nothing'}"
        )
        drew = draw_frames(prepared.model, test.frames[0], probabilities, png, title)
        return {"test": report, "frames_png": str(png) if drew else None}

    def report(self, summary: dict) -> str:
        test = summary["test"]
        lines = (
            f"\n{trained_line(summary)}; test digit error rate "
            f"{test['digit_error_rate']:.3f}, string accuracy {test['string_accuracy']:.3f} over "
            f"{test['utterances']} utterances by {test['voices']} voices never heard (greedy); "
            f"model: {summary['model_path']}"
        )
        if summary["frames_png"]:
            lines += f"\nspectrogram and label probabilities: {summary['frames_png']}"
        return lines

    def evaluate(self, path, model, extra, beam=1) -> tuple[dict, str]:
        data = saved_data(model, extra)
        if data["espeak_ng"] != espeak.version():
            raise UserError(
                f"the model was trained on speech by espeak-ng {data['espeak_ng']}, but this "
                f"machine has {espeak.version()}: its test voices would not sound the same; "
                "evaluate where that version is installed, or re-train here"
            )
        test = synthesised("test", data["test_utterances"], data)
        result = score(model, test, beam=beam)
        return result, (
            f"digit error rate {result['digit_error_rate']:.4f}, string accuracy "
            f"{result['string_accuracy']:.4f} over {result['utterances']} test utterances by "
            f"{result['voices']} voices never heard in training (beam {beam})"
        )

    def predict(self, path, model, extra, wavs=(), beam=1, plot=None) -> tuple[list, list[str]]:
        """The digits heard in each WAV file; the first drawn to ``plot`` when given."""
        recipe = recipe_of(saved_data(model, extra))
        if not wavs:
            raise UserError("give the speech to transcribe with --wav FILE.wav")
        frames = [audio_features(*read_wav(wav), recipe) for wav in wavs]
        utterances = Utterances(frames, [np.zeros(0, np.int64)] * len(frames), list(wavs))
        heard = transcribe(model, utterances, range(len(wavs)), beam)
        results = [
            {"wav": str(wav), "digits": labels_to_digits(labels)}
            for wav, labels in zip(wavs, heard, strict=True)
        ]
        if plot:
            probabilities = label_probabilities(model, utterances, 0)
            title = f"{wavs[0]}: heard {results[0]['digits'] or 'nothing'}"
            if not draw_frames(model, frames[0], probabilities, plot, title):
                raise UserError("--plot needs matplotlib: pip install 'rnnkit[plot]'")
        return results, [f"{result['wav']}\t{result['digits']}" for result in results]


TASK = SpeechRecognition()
