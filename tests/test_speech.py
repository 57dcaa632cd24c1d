"""The speech task end to end, as a user runs it: train on a few synthesised utterances,
evaluate on the voices never heard, transcribe WAV files (any rate), draw the frames; and the
one-line errors of bad input."""

import json
import wave

import pytest

from cli_helpers import assert_one_line_error, run_cli
from rnnkit.cli import main
from rnnkit.io.models import load_with_extra, save
from rnnkit.speech import espeak
from rnnkit.speech.wav import write_wav
from rnnkit.tasks import pipeline
from rnnkit.tasks.speech import TASK, SpeechOptions

LEARNED = 0.25  # test digit error rate the slow test must beat (0.140 here, 2026-12-06)
TINY = [
    "--train-utterances", 64, "--val-utterances", 8, "--test-utterances", 8, "--max-digits", 3,
    "--hidden", 8, "--layers", 1, "--steps", 4, "--validate-every", 2, "--checkpoint-every", 2,
]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory, espeak):
    """A speech model trained for 4 steps (its features cached in a temporary folder)."""
    folder = tmp_path_factory.mktemp("speech")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(folder / "cache"))
        status = main([str(arg) for arg in ["train", "speech", *TINY, "--out", folder / "run"]])
    assert status in (0, None)
    return folder


def spoken_wav(path, digits_text: str, rate: int, speed=175, pitch=50) -> str:
    """``digits_text`` said by en-us at ``rate`` Hz into a 16-bit WAV file at ``path``."""
    samples = espeak.synthesise(digits_text, "gmw/en-US", speed=speed, pitch=pitch, rate=rate)
    write_wav(path, samples, rate)
    return str(path)


def test_train_leaves_model_plots_and_test_figures(run):
    out = run / "run"
    for name in ("model.safetensors", "metrics.jsonl", "loss.png", "frames.png"):
        assert (out / name).is_file(), name
    model, extra = load_with_extra(out / "model.safetensors")
    assert extra["task"] == "speech" and extra["labels"][0] == "<blank>"
    assert extra["test"]["digit_error_rate"] >= 0 and extra["test"]["utterances"] == 8
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("val_digit_error_rate" in line for line in metrics)


def test_evaluate_remakes_the_test_voices(run, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(run / "cache"))
    status, out, err = run_cli(capsys, "evaluate", run / "run", "--json")
    assert status == 0, err
    figures = json.loads(out)
    _, extra = load_with_extra(run / "run" / "model.safetensors")
    assert figures["digit_error_rate"] == pytest.approx(extra["test"]["digit_error_rate"])
    assert figures["utterances"] == 8 and figures["voices"] >= 1
    status, out, err = run_cli(capsys, "evaluate", run / "run", "--beam", 3)
    assert status == 0, err
    assert "digit error rate" in out and "(beam 3)" in out


@pytest.mark.parametrize("rate", [16000, 22050, 8000])
def test_predict_reads_wavs_at_any_rate_and_draws(run, capsys, tmp_path, rate):
    wav = spoken_wav(tmp_path / "said.wav", "four two", rate)
    png = tmp_path / "said.png"
    status, out, err = run_cli(
        capsys, "predict", run / "run", "--wav", wav, "--plot", png, "--json"
    )
    assert status == 0, err
    [result] = json.loads(out)
    assert result["wav"] == wav
    assert set(result["digits"]) <= set("0123456789")
    assert png.stat().st_size > 10_000


def test_predict_errors_are_one_line(run, capsys, tmp_path):
    model = run / "run"
    assert_one_line_error(run_cli(capsys, "predict", model), "rnnkit predict", "--wav FILE.wav")
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    assert_one_line_error(run_cli(capsys, "predict", model, "--wav", text), "rnnkit predict", "WAV")
    eight_bit = tmp_path / "eight.wav"
    with wave.open(str(eight_bit), "wb") as file:
        file.setnchannels(1), file.setsampwidth(1), file.setframerate(16000)
        file.writeframes(bytes(1600))
    assert_one_line_error(
        run_cli(capsys, "predict", model, "--wav", eight_bit), "rnnkit predict", "sox"
    )
    result = run_cli(capsys, "predict", model, "--wav", tmp_path / "missing.wav")
    assert_one_line_error(result, "rnnkit predict", "missing.wav")


def test_a_tampered_recipe_is_named(run, capsys, tmp_path):
    model, extra = load_with_extra(run / "run" / "model.safetensors")
    extra["data"]["recipe"]["speeds"] = [300, 100]
    save(model, tmp_path / "bad.safetensors", extra=extra)
    result = run_cli(capsys, "evaluate", tmp_path / "bad.safetensors")
    assert_one_line_error(result, "rnnkit evaluate", "data.recipe")
    extra["labels"] = extra["labels"][::-1]
    save(model, tmp_path / "bad.safetensors", extra=extra)
    result = run_cli(capsys, "predict", tmp_path / "bad.safetensors", "--wav", "x.wav")
    assert_one_line_error(result, "rnnkit predict", "labels")


def test_another_espeak_version_is_refused_by_evaluate(run, capsys, monkeypatch):
    monkeypatch.setattr(espeak, "version", lambda: "9.99")
    result = run_cli(capsys, "evaluate", run / "run")
    assert_one_line_error(result, "rnnkit evaluate", "espeak-ng 1.")


def test_options_and_a_missing_espeak_are_one_line_errors(capsys, tmp_path, monkeypatch):
    bad = run_cli(capsys, "train", "speech", "--min-digits", 5, "--max-digits", 2,
                  "--out", tmp_path / "r")  # fmt: skip
    assert_one_line_error(bad, "rnnkit train speech", "min_digits")
    monkeypatch.setattr(espeak, "PROGRAM", "espeak-ng-not-here")
    espeak.version.cache_clear()
    espeak.variants.cache_clear()
    try:
        result = run_cli(capsys, "train", "speech", *TINY, "--out", tmp_path / "run")
    finally:
        monkeypatch.undo()
        espeak.version.cache_clear()
        espeak.variants.cache_clear()
    assert_one_line_error(result, "rnnkit train speech", "sudo apt-get install espeak-ng")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_small_recogniser_hears_voices_it_never_heard(espeak, tmp_path, monkeypatch):
    """About a minute: 1,000 utterances of 1-3 digits, one bidirectional GRU layer of 48 units,
    600 steps; the test voices are variants training never used."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    options = SpeechOptions(
        train_utterances=1000, val_utterances=100, test_utterances=200, max_digits=3, hidden=48,
        layers=1, steps=600, validate_every=100, checkpoint_every=600, out=str(tmp_path / "run"),
    )  # fmt: skip
    summary = pipeline.train(TASK, options, say=lambda line: None)
    assert summary["test"]["digit_error_rate"] < LEARNED  # hearing nothing scores 1.0
