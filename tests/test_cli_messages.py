"""What the commands say when given the wrong file or a text the model does not fully know: what
the file is, what the command needs, and what was left out."""

import contextlib
import io
import json
import shutil

import pytest

from cli_helpers import assert_one_line_error, run_cli
from rnnkit import GRU, save
from rnnkit.cli import main
from rnnkit.models.classifier import SequenceClassifier

TEXT = (
    "ROMEO:\nBut soft, what light through yonder window breaks?\n"
    "It is the east, and Juliet is the sun.\n\n"
) * 12


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny language model's run folder (checkpoints at steps 2 and 4), and its text."""
    folder = tmp_path_factory.mktemp("messages")
    text = folder / "play.txt"
    text.write_text(TEXT, encoding="utf-8")
    out = folder / "run"
    arguments = ["train", "--text", text, "--steps", 4, "--hidden", 8, "--layers", 1,
                 "--embedding", 4, "--batch", 2, "--seq-len", 10, "--validate-every", 2,
                 "--checkpoint-every", 2, "--out", out]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main([str(arg) for arg in arguments]) == 0
    return out, text


@pytest.mark.parametrize("command", [["generate"], ["evaluate", "--text", "{text}"], ["predict"]])
def test_a_checkpoint_names_the_model_of_its_run(run, capsys, command):
    out, text = run
    checkpoint = out / "checkpoints" / "step-00000004.safetensors"
    arguments = [arg.format(text=text) for arg in command]
    result = run_cli(capsys, arguments[0], checkpoint, *arguments[1:])
    assert_one_line_error(
        result, f"rnnkit {command[0]}",
        f"{checkpoint} is a training checkpoint, not a model file; give {out}/model.safetensors "
        f"(or the run folder {out})",
    )  # fmt: skip


def test_an_unfinished_run_says_how_to_finish_it(run, capsys, tmp_path):
    out, _ = run
    unfinished = tmp_path / "unfinished"
    shutil.copytree(out / "checkpoints", unfinished / "checkpoints")
    result = run_cli(capsys, "generate", unfinished)
    assert_one_line_error(
        result, "rnnkit generate",
        f"the run folder {unfinished} holds no model.safetensors yet: its run has not finished "
        f"(newest checkpoint: step-00000004.safetensors); if it stopped, finish it with "
        f"'rnnkit train ... --out {unfinished} --resume'",
    )  # fmt: skip
    checkpoint = unfinished / "checkpoints" / "step-00000004.safetensors"
    result = run_cli(capsys, "generate", checkpoint)
    assert_one_line_error(result, "rnnkit generate", f"--out {unfinished} --resume")
    result = run_cli(capsys, "generate", tmp_path)
    assert_one_line_error(
        result, "rnnkit generate", f"the model {tmp_path} is a directory without a model"
    )


@pytest.mark.parametrize("command", ["generate", "diagnose"])
def test_a_language_model_command_names_the_kind_of_model_it_got(capsys, tmp_path, command):
    path = tmp_path / "model.safetensors"
    classifier = SequenceClassifier(2, vocab_size=5, embedding_dim=3, hidden_size=4, seed=0)
    save(classifier, path, extra={"task": "classify"})
    text = ["--text", path] if command == "diagnose" else []
    result = run_cli(capsys, command, tmp_path, *text)
    assert_one_line_error(
        result, f"rnnkit {command}",
        f"{tmp_path} holds a classifier (made by 'rnnkit train classify'), not a language "
        "model; give one made by 'rnnkit train lm'",
    )  # fmt: skip


@pytest.mark.parametrize("command", ["generate", "evaluate", "predict"])
def test_a_model_no_task_makes_is_named_as_one(capsys, tmp_path, command):
    path = tmp_path / "gru.safetensors"
    save(GRU(2, 3, seed=0), path)
    assert_one_line_error(
        run_cli(capsys, command, path), f"rnnkit {command}",
        f"{path} holds a GRU, a model 'rnnkit train' does not make (it makes a language model "
        "(lm), a classifier (classify)",
    )  # fmt: skip


def evaluated(capsys, *arguments) -> dict:
    status, out, err = run_cli(capsys, "evaluate", *arguments, "--json")
    assert status == 0, err
    return json.loads(out)


def test_evaluate_skips_characters_the_model_never_saw_and_counts_them(run, capsys, tmp_path):
    out, text = run
    odd = tmp_path / "odd.txt"
    odd.write_text("Zounds! " + TEXT.replace("sun", "sun%"), encoding="utf-8")
    clean = evaluated(capsys, out, "--text", text)
    figures = evaluated(capsys, out, "--text", odd)
    skipped = 1 + 1 + 12  # "Z", "!" and a "%" after each "sun"; "ounds " the model knows
    assert figures["skipped"] == skipped
    assert figures["skipped_characters"] == ["!", "%", "Z"]
    assert clean["skipped"] == 0 and clean["skipped_characters"] == []
    assert figures["tokens"] == clean["tokens"] + len("ounds ")  # the kept characters, scored
    status, line, _ = run_cli(capsys, "evaluate", out, "--text", odd)
    assert status == 0
    assert line.strip().endswith(
        f"; skipped {skipped} characters the model never saw ('!', '%', 'Z'): the figures are "
        "over the characters kept"
    )
    result = run_cli(capsys, "evaluate", out, "--text", odd, "--unseen", "error")
    assert_one_line_error(result, "rnnkit evaluate", "3 character(s) the model never saw")


def test_evaluate_of_unseen_characters_only_says_so(run, capsys, tmp_path):
    out, _ = run
    odd = tmp_path / "odd.txt"
    odd.write_text("ZZZZ!", encoding="utf-8")
    assert_one_line_error(
        run_cli(capsys, "evaluate", out, "--text", odd), "rnnkit evaluate",
        "the text has fewer than 2 tokens once the 5 unseen characters are skipped",
    )  # fmt: skip


def test_a_prime_with_an_unseen_character_is_still_refused(run, capsys):
    out, _ = run
    result = run_cli(capsys, "generate", out, "--prime", "Zounds")
    assert_one_line_error(result, "rnnkit generate", "never saw in training: 'Z'")


def test_diagnose_says_when_the_text_is_shorter_than_the_length(run, capsys, tmp_path):
    out, _ = run
    short = tmp_path / "short.txt"
    short.write_text("But soft, what light!", encoding="utf-8")  # "!" the model never saw
    status, stdout, err = run_cli(capsys, "diagnose", out, "--text", short, "--length", 50,
                                  "--json")  # fmt: skip
    assert status == 0, err
    assert json.loads(stdout)["config"]["length"] == 19  # 20 characters kept: T = 19
    assert err.splitlines() == [
        "rnnkit diagnose: note: skipped 1 character the model never saw ('!')",
        "rnnkit diagnose: note: the text has 20 tokens, so T=19, not --length 50; give a text "
        "of 51 tokens or more for T=50",
    ]
    status, stdout, err = run_cli(capsys, "diagnose", out, "--text", short, "--length", 10)
    assert status == 0 and "T=10" in stdout
    assert err == ""  # the 11 characters read hold no "!": nothing was skipped


def test_diagnose_counts_the_unseen_characters_of_the_tokens_it_reads(run, capsys, tmp_path):
    out, _ = run
    odd = tmp_path / "odd.txt"
    odd.write_text("But! soft, what light" + "!" * 40, encoding="utf-8")
    status, stdout, err = run_cli(capsys, "diagnose", out, "--text", odd, "--length", 10)
    assert status == 0 and "T=10" in stdout  # "But soft, w": 11 characters, one "!" skipped
    assert err == "rnnkit diagnose: note: skipped 1 character the model never saw ('!')\n"


def test_diagnose_refuses_a_fresh_layers_option_given_with_a_model(run, capsys):
    out, text = run
    result = run_cli(capsys, "diagnose", out, "--text", text, "--hidden", 128)
    assert_one_line_error(
        result, "rnnkit diagnose",
        f"--hidden sets up the fresh layer diagnosed without a MODEL, and {out} has its own; "
        "leave --hidden out",
    )  # fmt: skip
    status, stdout, err = run_cli(capsys, "diagnose", "--hidden", 8, "--length", 5)
    assert status == 0 and "T=5, H=8" in stdout, err
