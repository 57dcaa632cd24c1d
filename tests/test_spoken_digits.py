"""The synthesised spoken-digit data set (rnnkit.speech.spoken_digits, espeak, noise)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from rnnkit.errors import UserError
from rnnkit.speech import espeak
from rnnkit.speech import spoken_digits as sd
from rnnkit.speech.noise import add_noise, coloured_noise

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


def test_labels_are_blank_zero_and_digit_plus_one():
    assert sd.LABELS[sd.BLANK] == "<blank>" and len(sd.LABELS) == 11
    np.testing.assert_array_equal(sd.digits_to_labels("0123456789"), np.arange(1, 11))
    assert sd.digits_to_labels("309").dtype == np.int64
    assert sd.labels_to_digits(sd.digits_to_labels("9081726354")) == "9081726354"
    assert sd.digits_to_text("309") == "three zero nine"


@pytest.mark.parametrize("digits", ["", "12a", "٣", "1 2"])
def test_bad_digit_strings_are_refused(digits):
    with pytest.raises(UserError, match="non-empty string of 0-9"):
        sd.digits_to_labels(digits)


def test_labels_outside_the_digits_are_refused():
    with pytest.raises(UserError, match="1..10"):
        sd.labels_to_digits([3, 0, 4])


def test_variant_split_is_a_fixed_function_of_the_name():
    names = [f"variant{index}" for index in range(2000)]
    splits = [sd.variant_split(name) for name in names]
    assert splits == [sd.variant_split(name) for name in names]
    shares = {split: splits.count(split) / len(names) for split in sd.SPLITS}
    assert shares["test"] == pytest.approx(0.15, abs=0.03)
    assert shares["val"] == pytest.approx(0.15, abs=0.03)
    assert sd.variant_split("m1") == "train" and sd.variant_split("f2") == "test"


@pytest.mark.parametrize("colour", ["white", "pink", "brown"])
@pytest.mark.parametrize("snr_db", [30.0, 20.0, 10.0, 0.0])
def test_noise_has_the_asked_snr(colour, snr_db):
    rng = np.random.default_rng(4)
    signal = np.sin(np.linspace(0, 300, 12345)) * np.linspace(0, 0.5, 12345)
    noisy = add_noise(signal, snr_db, colour, rng)
    noise = noisy.astype(np.float64) - signal
    measured = 10 * np.log10(np.mean(signal**2) / np.mean(noise**2))
    assert measured == pytest.approx(snr_db, abs=0.5)
    assert noisy.dtype == np.float32


@pytest.mark.parametrize(("colour", "slope"), [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_noise_power_falls_as_its_colour_says(colour, slope):
    noise = coloured_noise(1 << 16, colour, np.random.default_rng(5))
    power = np.abs(np.fft.rfft(noise)[1:]) ** 2
    octaves = [power[2**k : 2 ** (k + 1)].mean() for k in range(4, 14)]  # bins 16..16383
    fitted = np.polyfit(np.log2(2.0 ** np.arange(4, 14)), np.log2(octaves), 1)[0]
    assert fitted == pytest.approx(slope, abs=0.1)
    assert np.mean(noise**2) == pytest.approx(1.0)


def test_unknown_noise_colour_is_refused():
    with pytest.raises(UserError, match="unknown noise colour 'blue'"):
        add_noise(np.ones(100), 10.0, "blue", np.random.default_rng(0))


def test_a_missing_espeak_ng_gives_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no espeak-ng on PATH
    with pytest.raises(UserError) as raised:
        espeak.synthesise("one two", "gmw/en")
    assert str(raised.value) == (
        "espeak-ng is not installed; install it with: sudo apt-get install espeak-ng "
        "(Debian/Ubuntu) or brew install espeak-ng (macOS)"
    )


def test_the_cache_folder_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert sd.cache_folder() == tmp_path / "rnnkit" / "speech"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert sd.cache_folder() == tmp_path / "home" / ".cache" / "rnnkit" / "speech"


def test_bad_recipes_are_refused():
    with pytest.raises(UserError, match="digit_counts"):
        sd.Recipe(digit_counts=(0, 3))
    with pytest.raises(UserError, match="speeds must be"):
        sd.Recipe(speeds=(50, 200))
    with pytest.raises(UserError, match="colours"):
        sd.Recipe(colours=("blue",))


@needs_espeak
def test_the_splits_are_disjoint_by_variant():
    splits = {split: set(sd.split_variants(split)) for split in sd.SPLITS}
    assert not splits["train"] & splits["val"]
    assert not splits["train"] & splits["test"]
    assert not splits["val"] & splits["test"]
    assert set.union(*splits.values()) == set(espeak.variants())
    assert all(len(variants) >= 10 for variants in splits.values())
    assert not espeak.EXCLUDED_VARIANTS & set(espeak.variants())
    for split in sd.SPLITS:
        utterances = sd.plan(split, 200, seed=1)
        assert {utterance.variant for utterance in utterances} <= splits[split]
        assert {utterance.accent for utterance in utterances} == set(espeak.ACCENTS)


@needs_espeak
def test_the_plan_is_reproducible_from_the_seed():
    first = sd.plan("train", 20, seed=7)
    assert first == sd.plan("train", 20, seed=7)
    assert first[:5] == sd.plan("train", 5, seed=7)  # a larger count extends a smaller one
    assert first != sd.plan("train", 20, seed=8)
    assert sd.plan("val", 20, seed=7) != sd.plan("test", 20, seed=7)
    lengths = {len(utterance.digits) for utterance in sd.plan("train", 300, seed=0)}
    assert lengths == set(range(1, 8))


@needs_espeak
def test_every_accent_applies_the_variant():
    # espeak-ng 1.51 ignores the variant of "en-gb+f2"; ACCENTS names voice files instead.
    for accent in espeak.ACCENTS:
        plain = espeak.synthesise("seven", espeak.ACCENTS[accent])
        varied = espeak.synthesise("seven", espeak.voice_name(accent, "f2"))
        assert plain.shape != varied.shape or not np.array_equal(plain, varied), accent


@needs_espeak
def test_audio_is_16_khz_speech_with_the_asked_noise():
    utterance = sd.Utterance("309", "en-us", "m3", 170, 50, None, "white", 0)
    speech = utterance.audio()
    assert speech.dtype == np.float32 and 0.6 < len(speech) / 16000 < 2.5
    assert np.sqrt(np.mean(speech**2)) > 0.02  # not silence
    np.testing.assert_array_equal(speech, utterance.audio())  # espeak-ng is deterministic
    noisy = sd.Utterance("309", "en-us", "m3", 170, 50, 20.0, "pink", 11).audio()
    measured = 10 * np.log10(np.mean(speech**2) / np.mean((noisy - speech) ** 2))
    assert measured == pytest.approx(20.0, abs=0.5)


@needs_espeak
def test_features_and_labels_map_back_to_the_digits(tmp_path):
    features, labels = sd.spoken_digit_features("val", 6, seed=3, cache_dir=tmp_path, workers=2)
    utterances = sd.plan("val", 6, seed=3)
    assert [sd.labels_to_digits(label) for label in labels] == [u.digits for u in utterances]
    for array, label in zip(features, labels, strict=True):
        assert array.dtype == np.float32 and array.shape[1] == 40
        assert len(array) >= 20 * len(label)  # at 100 frames a second: room for CTC
    again, _ = sd.spoken_digit_features("val", 6, seed=3, cache=False, workers=1)
    assert all(np.array_equal(a, b) for a, b in zip(features, again, strict=True))


@needs_espeak
def test_features_are_cached_without_pickle_and_rebuilt_when_broken(tmp_path):
    features, labels = sd.spoken_digit_features("test", 3, seed=0, cache_dir=tmp_path)
    (cached,) = tmp_path.iterdir()
    assert cached.name.startswith("test-3-") and cached.suffix == ".npz"
    with np.load(cached, allow_pickle=False) as stored:
        assert set(stored.files) == {"features", "frame_counts", "labels", "label_counts"}
    loaded, loaded_labels = sd.spoken_digit_features("test", 3, seed=0, cache_dir=tmp_path)
    assert all(np.array_equal(a, b) for a, b in zip(features, loaded, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(labels, loaded_labels, strict=True))
    cached.write_bytes(b"not a zip file")
    rebuilt, _ = sd.spoken_digit_features("test", 3, seed=0, cache_dir=tmp_path)
    assert all(np.array_equal(a, b) for a, b in zip(features, rebuilt, strict=True))
    assert np.load(cached, allow_pickle=False)["frame_counts"].shape == (3,)


@needs_espeak
def test_bad_plans_are_refused():
    with pytest.raises(UserError, match="unknown split 'dev'"):
        sd.plan("dev", 3)
    with pytest.raises(UserError, match="count must be a positive integer"):
        sd.plan("train", 0)
    with pytest.raises(UserError, match="seed must be a non-negative integer"):
        sd.plan("train", 3, seed=-1)
