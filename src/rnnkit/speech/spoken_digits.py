"""The spoken-digit data set: digit strings spoken by espeak-ng, offline and reproducible.

An utterance is 1 to 7 digits said as words ("three nine zero"; espeak-ng says "zero", not
"oh") by one voice (an ``espeak.ACCENTS`` accent plus a voice variant) at a drawn speed and pitch,
with white, pink or brown noise added at a drawn signal-to-noise ratio (or none), at 16 kHz.
Everything about utterance i of a split comes from its own generator, seeded by (seed, split, i),
so a data set is the same for any count, thread count or order.

Splits are by voice variant: each variant belongs to one split (``variant_split``, a fixed hash
of its name), so the validation and test variants are never heard in training, under any accent.
All accents are used in every split.

Labels for CTC (``LABELS``): blank is 0, digit d is d + 1 (1..10).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from rnnkit.errors import UserError
from rnnkit.io.files import atomic_write_bytes
from rnnkit.speech import espeak
from rnnkit.speech.features import log_mel, normalise
from rnnkit.speech.noise import COLOURS, add_noise
from rnnkit.speech.wav import resample

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
BLANK = 0  # the CTC blank label
LABELS = ("<blank>", *"0123456789")  # label id -> what it stands for: blank 0, digit d -> d + 1
SPLITS = ("train", "val", "test")
SPLIT_SALT = "rnnkit spoken digits 1"  # changing it reshuffles which variant is in which split
HELD_OUT_SHARE = {"test": 0.15, "val": 0.15}  # share of the variants in each held-out split
CACHE_FORMAT = 1  # bump when what the cache holds changes


def digits_to_labels(digits: str) -> np.ndarray:
    """(len(digits),) int64 labels of a digit string: "309" -> [4, 1, 10]."""
    if not digits or not digits.isascii() or not digits.isdigit():
        raise UserError(f"digits must be a non-empty string of 0-9, got {digits!r}")
    return np.array([LABELS.index(digit) for digit in digits], dtype=np.int64)


def labels_to_digits(labels) -> str:
    """The digit string of labels 1..10 (the inverse of ``digits_to_labels``)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.all((labels >= 1) & (labels < len(LABELS))):
        raise UserError(f"digit labels must be a 1-D array of 1..{len(LABELS) - 1}, got {labels}")
    return "".join(LABELS[label] for label in labels)


def digits_to_text(digits: str) -> str:
    """What espeak-ng is asked to say: "309" -> "three zero nine"."""
    return " ".join(DIGIT_WORDS[label - 1] for label in digits_to_labels(digits))


def variant_split(variant: str) -> str:
    """The split ("train", "val" or "test") of a voice variant: a fixed function of its name
    (sha256 with ``SPLIT_SALT``), so it does not depend on which other variants are installed."""
    digest = hashlib.sha256(f"{SPLIT_SALT}:{variant}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2.0**64  # uniform in [0, 1)
    if position < HELD_OUT_SHARE["test"]:
        return "test"
    if position < HELD_OUT_SHARE["test"] + HELD_OUT_SHARE["val"]:
        return "val"
    return "train"


def split_variants(split: str) -> tuple[str, ...]:
    """The installed espeak-ng variants of ``split``, sorted."""
    _check_split(split)
    return tuple(variant for variant in espeak.variants() if variant_split(variant) == split)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How utterances are drawn and turned into features (the cache key holds all of it).

    digit_counts: the fewest and most digits in an utterance (inclusive).
    speeds: words per minute, drawn uniformly (inclusive); pitches: espeak-ng -p, likewise.
    snrs_db: signal-to-noise ratios drawn with equal chance; None means no noise.
    colours: noise colours drawn with equal chance (``noise.COLOURS``).
    rate: sampling rate (Hz) of the audio; num_mels: log-mel bands of the features.
    """

    digit_counts: tuple[int, int] = (1, 7)
    speeds: tuple[int, int] = (120, 220)
    pitches: tuple[int, int] = (25, 75)
    snrs_db: tuple[float | None, ...] = (None, 30.0, 20.0, 10.0)
    colours: tuple[str, ...] = ("white", "pink", "brown")
    rate: int = 16000
    num_mels: int = 40

    def __post_init__(self):
        fewest, most = self.digit_counts
        if not 1 <= fewest <= most:
            raise UserError(
                f"digit_counts must be (fewest, most) with 1 <= fewest <= most, "
                f"got {self.digit_counts}"
            )
        for name, (low, high), limits in (
            ("speeds", self.speeds, espeak.SPEED_RANGE),
            ("pitches", self.pitches, espeak.PITCH_RANGE),
        ):
            if not limits[0] <= low <= high <= limits[1]:
                raise UserError(f"{name} must be (low, high) within {limits}, got {(low, high)}")
        if not self.snrs_db or not self.colours or not set(self.colours) <= set(COLOURS):
            raise UserError(
                f"snrs_db and colours must be non-empty and colours from {', '.join(COLOURS)}; "
                f"got {self.snrs_db} and {self.colours}"
            )


DEFAULT_RECIPE = Recipe()


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One drawn utterance: what is said, by which voice, how, and the noise added."""

    digits: str
    accent: str
    variant: str
    speed: int
    pitch: int
    snr_db: float | None
    colour: str
    noise_seed: int

    def audio(self, rate: int = 16000) -> np.ndarray:
        """(N,) float32 samples at ``rate`` Hz: espeak-ng's speech plus the noise."""
        voice = espeak.voice_name(self.accent, self.variant)
        text = digits_to_text(self.digits)
        speech = espeak.synthesise(text, voice, speed=self.speed, pitch=self.pitch, rate=rate)
        if self.snr_db is None:
            return speech
        return add_noise(speech, self.snr_db, self.colour, np.random.default_rng(self.noise_seed))


def plan(
    split: str, count: int, *, seed: int = 0, recipe: Recipe = DEFAULT_RECIPE
) -> list[Utterance]:
    """The first ``count`` utterances of ``split`` for ``seed`` (no audio is made)."""
    _check_split(split)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise UserError(f"count must be a positive integer number of utterances, got {count!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}")
    variants = split_variants(split)
    if not variants:
        raise UserError(f"espeak-ng {espeak.version()} has no voice variants for {split}")
    accents = tuple(espeak.ACCENTS)
    utterances = []
    for index in range(count):
        rng = np.random.default_rng([seed, SPLITS.index(split), index])
        length = int(rng.integers(recipe.digit_counts[0], recipe.digit_counts[1] + 1))
        utterances.append(
            Utterance(
                digits="".join(str(digit) for digit in rng.integers(0, 10, size=length)),
                accent=accents[rng.integers(len(accents))],
                variant=variants[rng.integers(len(variants))],
                speed=int(rng.integers(recipe.speeds[0], recipe.speeds[1] + 1)),
                pitch=int(rng.integers(recipe.pitches[0], recipe.pitches[1] + 1)),
                snr_db=recipe.snrs_db[rng.integers(len(recipe.snrs_db))],
                colour=recipe.colours[rng.integers(len(recipe.colours))],
                noise_seed=int(rng.integers(2**63)),
            )
        )
    return utterances


def spoken_digit_audio(
    split: str,
    count: int,
    *,
    seed: int = 0,
    recipe: Recipe = DEFAULT_RECIPE,
    workers: int | None = None,
) -> list[tuple[np.ndarray, Utterance]]:
    """``count`` utterances of ``split`` as audio: (samples (N,) float32 at recipe.rate Hz,
    the utterance), synthesised by ``workers`` threads (default: one per CPU)."""
    utterances = plan(split, count, seed=seed, recipe=recipe)
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        audio = list(pool.map(lambda utterance: utterance.audio(recipe.rate), utterances))
    return list(zip(audio, utterances, strict=True))


def audio_features(samples, rate: int, recipe: Recipe = DEFAULT_RECIPE) -> np.ndarray:
    """(frames, recipe.num_mels) float32 features of audio at ``rate`` Hz, resampled to
    recipe.rate first when it differs: ``normalise``d ``log_mel`` (25 ms windows every 10 ms:
    100 frames a second), rounded to float16 precision (what the cache stores, so cached and
    fresh features are equal). The features of every utterance and of every WAV file."""
    if rate != recipe.rate:
        samples = resample(samples, rate, recipe.rate)
    features = normalise(log_mel(samples, recipe.rate, num_mels=recipe.num_mels))
    return features.astype(np.float16).astype(np.float32)


def utterance_features(utterance: Utterance, recipe: Recipe = DEFAULT_RECIPE) -> np.ndarray:
    """(frames, recipe.num_mels) float32 ``audio_features`` of one utterance."""
    return audio_features(utterance.audio(recipe.rate), recipe.rate, recipe)


def spoken_digit_features(
    split: str,
    count: int,
    *,
    seed: int = 0,
    recipe: Recipe = DEFAULT_RECIPE,
    workers: int | None = None,
    cache: bool = True,
    cache_dir=None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``count`` utterances of ``split`` as features and CTC labels.

    Args:
        split: "train", "val" or "test".
        count: how many utterances (the first ``count`` for this seed: a larger count extends a
            smaller one).
        seed: the data set's seed.
        recipe: how utterances are drawn (``Recipe``).
        workers: threads synthesising at once (default: one per CPU).
        cache: read and write the features under ``cache_dir`` (default
            $XDG_CACHE_HOME/rnnkit/speech, else ~/.cache/rnnkit/speech), keyed by all the
            arguments above (but workers) and espeak-ng's version.
    Returns:
        features: count arrays (frames_i, recipe.num_mels) float32 (``utterance_features``);
        labels: count arrays (digits_i,) int64 of labels 1..10 (``digits_to_labels``).
    """
    utterances = plan(split, count, seed=seed, recipe=recipe)
    path = _cache_path(split, count, seed, recipe, cache_dir) if cache else None
    if path is not None and path.is_file():
        cached = _read_cache(path, count, recipe.num_mels)
        if cached is not None:
            return cached
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        features = list(
            pool.map(lambda utterance: utterance_features(utterance, recipe), utterances)
        )
    labels = [digits_to_labels(utterance.digits) for utterance in utterances]
    if path is not None:
        _write_cache(path, features, labels)
    return features, labels


def cache_folder() -> Path:
    """Where features are cached: $XDG_CACHE_HOME/rnnkit/speech, else ~/.cache/rnnkit/speech."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rnnkit" / "speech"


def _cache_path(split, count, seed, recipe, cache_dir) -> Path:
    """The cache file of these arguments (its name hashes them with espeak-ng's version)."""
    key = {
        "format": CACHE_FORMAT,
        "espeak": espeak.version(),
        "variants": split_variants(split),
        "split": split,
        "count": count,
        "seed": seed,
        "recipe": dataclasses.asdict(recipe),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    folder = cache_folder() if cache_dir is None else Path(cache_dir)
    return folder / f"{split}-{count}-{digest}.npz"


def _write_cache(path: Path, features, labels) -> None:
    """Store features and labels in one .npz file (float16 features, concatenated), atomically."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        features=np.concatenate(features).astype(np.float16),  # (total frames, num_mels)
        frame_counts=np.array([len(array) for array in features], dtype=np.int64),
        labels=np.concatenate(labels),  # (total digits,)
        label_counts=np.array([len(array) for array in labels], dtype=np.int64),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


def _read_cache(path: Path, count: int, num_mels: int):
    """(features, labels) from a cache file, or None when it is unreadable or does not fit."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            features = stored["features"].astype(np.float32)
            frame_counts, labels = stored["frame_counts"], stored["labels"]
            label_counts = stored["label_counts"]
    except (OSError, ValueError, KeyError):
        return None
    if (
        len(frame_counts) != count
        or len(label_counts) != count
        or features.shape != (frame_counts.sum(), num_mels)
        or len(labels) != label_counts.sum()
    ):
        return None
    return (
        np.split(features, np.cumsum(frame_counts)[:-1]),
        np.split(labels.astype(np.int64), np.cumsum(label_counts)[:-1]),
    )


def _check_split(split: str) -> None:
    """UserError unless ``split`` is one of ``SPLITS``."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; give one of {', '.join(SPLITS)}")
