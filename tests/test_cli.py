"""The rnnkit command: the language-model workflow and its errors, run as a user would."""

import json
import subprocess
import sys

import pytest

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


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny language model trained through the command line."""
    folder = tmp_path_factory.mktemp("lm")
    text = folder / "play.txt"
    text.write_text(TEXT, encoding="utf-8")
    out = folder / "run"
    result = rnnkit(
        "train", "--text", text, "--steps", 12, "--hidden", 16, "--layers", 1, "--embedding", 8,
        "--batch", 4, "--seq-len", 20, "--out", out, "--validate-every", 6,
        "--checkpoint-every", 6,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return folder, text, out, result


def test_train_saves_the_model_and_prints_a_sample(trained):
    _, _, out, result = trained
    assert (out / "model.safetensors").is_file()
    assert (out / "metrics.jsonl").is_file()
    assert "bits/char" in result.stdout
    assert "trained 12 steps" in result.stdout


def test_generate_prints_the_prime_and_its_continuation(trained):
    _, _, out, _ = trained
    result = rnnkit("generate", out / "model.safetensors", "--prime", "ROMEO:", "--length", 30,
                    "--seed", 1)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ROMEO:")
    assert len(result.stdout.rstrip("\n")) >= len("ROMEO:") + 20


def test_evaluate_json_has_consistent_figures(trained):
    _, text, out, _ = trained
    result = rnnkit("evaluate", out / "model.safetensors", "--text", text, "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert set(figures) == {"loss", "perplexity", "bits_per_char", "tokens"}
    assert figures["tokens"] == len(TEXT) - 1
    assert figures["perplexity"] == pytest.approx(2.718281828459045 ** figures["loss"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "{model}", "--prime", "Zounds!"], "never saw"),
        (["generate", "{folder}/missing.safetensors"], "missing.safetensors"),
        (["generate", "{text}"], "not a valid safetensors file"),
        (["evaluate", "{model}", "--text", "{folder}/missing.txt"], "no such file"),
        (["train", "--text", "{folder}/missing.txt", "--out", "{folder}/x"], "no such file"),
        (["generate", "{model}", "--temperature", "0"], "temperature must be > 0"),
    ],
)
def test_bad_input_gives_one_line_and_exit_status_2(trained, args, message):
    folder, text, out, _ = trained
    names = {"model": out / "model.safetensors", "folder": folder, "text": text}
    result = rnnkit(*[arg.format(**names) for arg in args])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_help_lists_the_commands():
    result = rnnkit("--help")
    assert result.returncode == 0
    for command in ("train", "generate", "evaluate"):
        assert command in result.stdout
