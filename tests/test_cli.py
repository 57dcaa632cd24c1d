"""The rnnkit command: the language-model workflow and its errors, run as a user would."""

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from cli_helpers import assert_one_line_error, run_cli

TEXT = (
    "ROMEO:\nBut soft, what light through yonder window breaks?\n"
    "It is the east, and Juliet is the sun.\n\n"
    "JULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\n"
    "Deny thy father and refuse thy name.\n\n"
) * 20


def rnnkit(*args, cwd=None):
    """Run the command in a fresh interpreter; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "rnnkit.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def logged(out) -> list[dict]:
    """The whole records of ``out/metrics.jsonl`` so far (a line being written is skipped)."""
    path = out / "metrics.jsonl"
    records = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def last_step(out) -> int:
    return max((record["step"] for record in logged(out)), default=0)


def final_validation_loss(out) -> float:
    return [record for record in logged(out) if record["kind"] == "validation"][-1]["val_loss"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny language model trained through the command line, and some bad files."""
    folder = tmp_path_factory.mktemp("lm")
    text = folder / "play.txt"
    text.write_text(TEXT, encoding="utf-8")
    (folder / "empty.txt").write_text("", encoding="utf-8")
    (folder / "binary.txt").write_bytes(b"ROMEO\xff\xfe\x00\x01")
    out = folder / "run"
    result = rnnkit(
        "train", "--text", text, "--steps", 12, "--hidden", 16, "--layers", 1, "--embedding", 8,
        "--batch", 4, "--seq-len", 20, "--out", out, "--validate-every", 6,
        "--checkpoint-every", 6,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    model = (out / "model.safetensors").read_bytes()
    (folder / "truncated.safetensors").write_bytes(model[: len(model) // 2])
    return folder, text, out, result


def test_train_saves_the_model_and_prints_a_sample(trained):
    _, _, out, result = trained
    assert (out / "model.safetensors").is_file()
    assert (out / "metrics.jsonl").is_file()
    assert "bits/char" in result.stdout
    assert "trained 12 steps" in result.stdout


def test_train_prints_validation_losses_and_samples(trained):
    _, _, _, result = trained
    for step in (6, 12):
        assert f"step {step}: val_loss" in result.stderr
        assert f"sample at step {step}:\n" in result.stderr


def test_generate_prints_the_prime_and_its_continuation(trained):
    _, _, out, _ = trained
    result = rnnkit("generate", out / "model.safetensors", "--prime", "ROMEO:", "--length", 30,
                    "--seed", 1)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ROMEO:")
    assert len(result.stdout.rstrip("\n")) >= len("ROMEO:") + 20


def test_a_run_folder_stands_for_its_model(trained):
    _, text, out, _ = trained
    by_file = rnnkit("evaluate", out / "model.safetensors", "--text", text, "--json")
    by_folder = rnnkit("evaluate", out, "--text", text, "--json")
    assert by_folder.returncode == 0, by_folder.stderr
    assert json.loads(by_folder.stdout) == json.loads(by_file.stdout)
    generated = rnnkit("generate", out, "--length", 5, "--seed", 1)
    assert generated.returncode == 0 and len(generated.stdout) > 5, generated.stderr


def test_evaluate_json_has_consistent_figures(trained):
    _, text, out, _ = trained
    result = rnnkit("evaluate", out / "model.safetensors", "--text", text, "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert set(figures) == {"loss", "perplexity", "bits_per_char", "tokens", "skipped",
                            "skipped_characters", "unknown_words"}  # fmt: skip
    assert figures["tokens"] == len(TEXT) - 1
    assert figures["perplexity"] == pytest.approx(2.718281828459045 ** figures["loss"])


def test_word_level_trains_generates_and_evaluates(trained, tmp_path):
    _, text, _, _ = trained
    out = tmp_path / "words"
    result = rnnkit(
        "train", "--text", text, "--level", "word", "--tie-weights", "--embedding", 16,
        "--hidden", 16, "--layers", 1, "--batch", 2, "--seq-len", 10, "--steps", 6,
        "--validate-every", 3, "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "vocabulary of 33 word tokens" in result.stdout  # 32 words, marks, newline; <unk>

    model = out / "model.safetensors"
    result = rnnkit("generate", model, "--prime", "But zebra", "--length", 8, "--seed", 0)
    assert result.returncode == 0, result.stderr  # 'zebra' is unknown: read as <unk>
    assert result.stdout.startswith("But zebra ") and len(result.stdout.split()) >= 2 + 4

    result = rnnkit("evaluate", model, "--text", text, "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    nats = figures["loss"] * figures["tokens"]
    predicted_chars = len(TEXT) - len("ROMEO")  # every character after the first word
    assert figures["bits_per_char"] == pytest.approx(nats / predicted_chars / math.log(2))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "{model}", "--prime", "Zounds!"], "never saw"),
        (["generate", "{folder}/missing.safetensors"], "missing.safetensors: no such file"),
        (
            ["generate", "{text}"],
            "is not a safetensors file (it starts like text); give a model file",
        ),
        (["generate", "{folder}"], "is a directory"),
        (["generate", "{folder}/truncated.safetensors"], "not a valid safetensors file"),
        (["generate", "{model}", "--temperature", "0"], "temperature must be > 0"),
        (["evaluate", "{model}", "--text", "{folder}/missing.txt"], "no such file"),
        (["evaluate", "{model}", "--text", "{folder}/binary.txt"], "is not UTF-8"),
        (["train", "--text", "{folder}/missing.txt"], "no such file"),
        (["train", "--text", "{folder}/empty.txt"], "empty.txt is empty"),
        (["train", "--text", "{folder}/binary.txt"], "binary.txt is not UTF-8"),
        (["train", "--text", "{text}", "--steps", "0"], "argument --steps: must be at least 1"),
        (["train", "--text", "{text}", "--hidden", "-3"], "argument --hidden: must be at least"),
        (["train", "--text", "{text}", "--steps", "two"], "argument --steps: expected a whole"),
        (["train", "--text", "{text}", "--dropout", "1.5"], "dropout must be in [0, 1)"),
        (["train", "--text", "{text}", "--val-fraction", "0"], "val_fraction must be in (0, 1)"),
        (["train", "--text", "{text}", "--lr", "0"], "lr must be a finite number > 0"),
        (["train", "--text", "{text}", "--clip", "-1"], "clip must be a finite number > 0"),
        (["train", "--text", "{text}", "--tie-weights"], "set --embedding 256"),
        (["train", "--text", "{text}", "--batch", "64"], "too few for --batch 64 x --seq-len 100"),
        (["train", "--text", "{text}", "--batch", "2", "--val-fraction", "1e-4"], "raise --val"),
    ],
)
def test_bad_input_gives_one_line_and_exit_status_2(trained, tmp_path, args, message):
    folder, text, out, _ = trained
    names = {"model": out / "model.safetensors", "folder": folder, "text": text}
    new_out = tmp_path / "out"
    extra = ["--out", str(new_out)] if args[0] == "train" else []
    result = rnnkit(*[arg.format(**names) for arg in args], *extra)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"rnnkit {args[0]}: error: ")
    assert message in result.stderr
    assert not new_out.exists()  # nothing written, not even the folder


def test_argparse_errors_are_one_exact_line(tmp_path):
    result = rnnkit("train", "--steps", 0, "--out", tmp_path / "out")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "rnnkit train: error: argument --steps: must be at least 1, got 0\n"
    assert not (tmp_path / "out").exists()


def test_sigkill_then_resume_ends_where_an_uninterrupted_run_ends(trained, tmp_path):
    _, text, _, _ = trained
    options = [
        "train", "--text", text, "--steps", 300, "--hidden", 32, "--layers", 2, "--embedding", 8,
        "--batch", 4, "--seq-len", 20, "--dropout", 0.1, "--checkpoint-every", 50,
        "--validate-every", 100, "--seed", 3,
    ]  # fmt: skip
    whole = rnnkit(*options, "--out", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr

    out = tmp_path / "killed"
    command = [sys.executable, "-m", "rnnkit.cli", *map(str, options), "--out", str(out)]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while last_step(out) <= 60 and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert run.poll() is None, "the run ended before it could be killed: make it longer"
        os.kill(run.pid, signal.SIGKILL)
    finally:
        run.kill()
        run.wait()
    assert 60 < last_step(out) < 300

    resumed = rnnkit(*options, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout + resumed.stderr
    assert final_validation_loss(out) == final_validation_loss(tmp_path / "whole")


def test_help_lists_the_commands():
    result = rnnkit("--help")
    assert result.returncode == 0
    for command in ("train", "generate", "evaluate"):
        assert command in result.stdout


def test_help_of_train_shows_the_way_to_its_options():
    assert "rnnkit train lm --help" in rnnkit("train", "--help").stdout
    result = rnnkit("train", "lm", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: rnnkit train [-h]") and "--tie-weights" in result.stdout


def test_resume_on_other_text_is_refused(trained, tmp_path):
    folder, text, out, _ = trained
    other = tmp_path / "other.txt"
    other.write_text("xyz " * 2000, encoding="utf-8")
    result = rnnkit("train", "--text", other, "--out", out, "--resume", "--steps", 20,
                    "--hidden", 16, "--layers", 1, "--embedding", 8, "--batch", 4,
                    "--seq-len", 20)  # fmt: skip
    assert result.returncode == 2
    assert f'texts ["{other}"] (the run\'s: ["{text}"])' in result.stderr


@pytest.fixture(scope="module")
def pairs_tsv(tmp_path_factory):
    """300 made-up words spelled with a-j, each letter pronounced as one phoneme."""
    import random

    rng = random.Random(0)
    words = set()
    while len(words) < 300:
        words.add("".join(rng.choice("abcdefghij") for _ in range(rng.randint(3, 6))))
    path = tmp_path_factory.mktemp("s2s") / "pairs.tsv"
    lines = (word + "\t" + " ".join(letter.upper() + "H" for letter in word) for word in words)
    path.write_text("\n".join(sorted(lines)) + "\n", encoding="utf-8")
    return path


def test_seq2seq_trains_predicts_and_evaluates(pairs_tsv, tmp_path):
    out = tmp_path / "run"
    result = rnnkit("train", "seq2seq", "--tsv", pairs_tsv, "--steps", 20, "--hidden", 16,
                    "--embedding", 8, "--batch", 16, "--out", out,
                    "--validate-every", 10)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "phoneme error rate" in result.stdout
    model = out / "model.safetensors"
    png = tmp_path / "attention.png"
    result = rnnkit("predict", model, "--input", "abc", "--attention-png", png)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("abc\t")
    if importlib.util.find_spec("matplotlib"):  # the picture needs the plot extra
        assert png.stat().st_size > 0
    result = rnnkit("evaluate", model, "--tsv", pairs_tsv, "--json", "--beam", 2)  # its test split
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)) == {"word_accuracy", "phoneme_error_rate", "words"}
    result = rnnkit("predict", model, "--input", "xyz")
    assert result.returncode == 2 and "never seen in training" in result.stderr


def test_diagnose_reports_a_vanishing_gradient_for_a_tanh_rnn():
    result = rnnkit("diagnose", "--cell", "rnn", "--length", 100, "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["verdict"] == "vanishing" and len(figures["grad_norms"]) == 100
    result = rnnkit("diagnose", "--cell", "lstm", "--forget-bias", 1)
    assert result.returncode == 0 and "LSTM" in result.stdout


def test_diagnose_a_trained_language_model_on_a_text(trained):
    _, text, out, _ = trained
    model = out / "model.safetensors"
    result = rnnkit("diagnose", model, "--text", text, "--length", 40, "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert len(figures["grad_norms"]) == 40
    assert figures["verdict"] in {"vanishing", "stable", "exploding"}
    assert figures["ratio_first_to_last"] == pytest.approx(
        figures["grad_norms"][0] / figures["grad_norms"][-1]
    )
    result = rnnkit("diagnose", model)
    assert result.returncode == 2 and "give --text FILE" in result.stderr


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="bench races torch")
def test_bench_times_both_libraries_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = rnnkit("bench", "--quick", "--repeats", 1, "--json", out)
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    modes = {(row["cell"], row["mode"]) for row in figures["rows"]}
    for cell in ("LSTM", "GRU", "RNN"):
        assert {(cell, "inference"), (cell, "training")} <= modes
    assert ("LSTMCell", "streaming step") in modes
    for row in figures["rows"]:
        assert row["ratio"] == pytest.approx(row["rnnkit_ms"] / row["torch_ms"], rel=1e-6)
    assert figures["sgemm_peak_gflops"] > 0 and figures["peak_memory_mb"]["rnnkit"] > 0
    assert "| LSTM | 1,100,32,32 | training |" in result.stdout
    assert set(figures["startup_seconds"]) == {"help", "first_step"}
    assert 0 < figures["startup_seconds"]["help"] < 60 and "rnnkit --help" in result.stdout


def test_bench_without_torch_says_how_to_install_it(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    assert_one_line_error(
        run_cli(capsys, "bench", "--quick"), "rnnkit bench", "pip install torch==2.13.0"
    )


def test_bare_rnnkit_shows_the_commands_and_the_first_steps(capsys):
    status, out, _ = run_cli(capsys)
    assert status == 2
    for command in ("train", "evaluate", "predict", "generate", "diagnose", "bench"):
        assert command in out
    assert "first steps:" in out and "rnnkit train --help" in out


def test_a_mistyped_task_is_named_with_the_near_one(capsys):
    result = run_cli(capsys, "train", "clasify", "--epochs", 1)
    assert_one_line_error(
        result, "rnnkit train", "no task is named 'clasify'; did you mean 'classify'?"
    )
    assert "the tasks: lm, classify, forecast, seq2seq" in result[2]


def test_train_help_gives_each_option_a_line_and_its_default(capsys):
    status, out, _ = run_cli(capsys, "train", "lm", "--help")
    assert status == 0
    for line in (
        "the recurrent cell (default: lstm)",
        "recurrent layers, stacked (default: 2)",
        "examples per optimizer step (default: 32)",
        "optimizer steps (default: 1200)",
    ):
        assert line in " ".join(out.split()), line
    _, out, _ = run_cli(capsys, "generate", "--help")
    for option in ("--temperature", "--top-k", "--top-p", "--seed"):
        assert option in out
    assert "(default: 0.8)" in out
