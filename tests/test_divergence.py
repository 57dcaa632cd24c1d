"""Through the command line: a diverging run stops with a message and a non-zero exit, keeping a
checkpoint from before it diverged; a resume applies new training settings and refuses options
that change the model, the data or the batches."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, classifier_run, play_file, run_cli
from rnnkit.train import checkpoints

TEXT = (
    "HAMLET:\nTo be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles.\n\n"
) * 20
SMALL = ["--hidden", 16, "--layers", 1, "--embedding", 8, "--batch", 4, "--seq-len", 20]


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    return play_file(tmp_path_factory, TEXT)


def train(text, out, *options):
    return ["train", "--text", text, "--out", out, *SMALL, "--validate-every", 10, *options]


def step_records(out) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [record for record in map(json.loads, lines) if record["kind"] == "step"]


def model_arrays(path) -> dict:
    arrays, _ = checkpoints.read_checkpoint(path)
    return {name: value for name, value in arrays.items() if name.startswith("model/")}


@pytest.mark.parametrize("lr", ["10", "1e4", "1e30"])
def test_a_diverging_run_stops_and_keeps_a_checkpoint_from_before(text, tmp_path, lr, capsys):
    out = tmp_path / "run"
    status, stdout, err = run_cli(
        capsys, *train(text, out, "--steps", 30, "--lr", lr, "--checkpoint-every", 1)
    )
    assert status == 1 and "trained" not in stdout
    stops = [line for line in err.splitlines() if line.startswith("stopped at step ")]
    assert len(stops) == 1 and "the loss diverged: the median of the last 5" in stops[0]
    assert "initial loss" in stops[0] and "gradient norm was" in stops[0]
    assert "lower the learning rate or clip harder" in stops[0]
    assert not (out / "model.safetensors").exists()

    # the checkpoint kept is from before the loss first went over the limit: here step 0's (the
    # loss goes over it at step 2), the initial weights, as a run at a sane rate has them
    (kept,) = checkpoints.list_checkpoints(out / "checkpoints")
    assert f"the last good checkpoint, {kept.name}, is kept" in stops[0]
    _, state = checkpoints.read_checkpoint(kept)
    limit = 4 * state["initial_loss"]
    losses = {record["step"]: record["loss"] for record in step_records(out)}
    first_over = min(step for step, loss in losses.items() if loss > limit)
    assert state["step"] == 0 and first_over == 2
    arrays = model_arrays(kept)
    assert all(np.isfinite(value).all() for value in arrays.values())
    healthy = tmp_path / "healthy"
    assert run_cli(capsys, *train(text, healthy, "--steps", 1))[0] == 0
    initial = model_arrays(checkpoints.checkpoint_path(healthy / "checkpoints", 0))
    assert initial.keys() == arrays.keys()
    for name, value in initial.items():
        assert np.array_equal(value, arrays[name]), name

    # resuming from it at a sane rate applies the new rate and trains to the end
    status, stdout, err = run_cli(
        capsys, *train(text, out, "--steps", 30, "--lr", "2e-3", "--resume")
    )
    assert status == 0, err
    assert f"resumed from {kept} at step {state['step']}" in err
    assert f"learning rate {float(lr):g} -> 0.002 from now on" in err
    assert "resumed at step 0: trained steps 1 to 30 in " in stdout
    resumed = [r for r in step_records(out) if r["step"] > state["step"]]
    assert [r["lr"] for r in resumed] == [0.002] * (30 - state["step"])
    assert all(math.isfinite(r["loss"]) and r["loss"] < limit for r in resumed)


def test_the_command_exits_non_zero_on_divergence(text, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "rnnkit.cli", *map(str, train(text, tmp_path, "--steps", 12,
                                                             "--lr", 10))],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    assert "the loss diverged" in result.stderr and "Traceback" not in result.stderr


def six_steps(capsys, text, out) -> list:
    """Train 6 steps into ``out`` (checkpoints every 3); the arguments used."""
    arguments = train(text, out, "--steps", 6, "--checkpoint-every", 3)
    status, _, err = run_cli(capsys, *arguments)
    assert status == 0, err
    return arguments


def test_resume_applies_new_training_settings_and_says_so(text, tmp_path, capsys):
    out = tmp_path / "run"
    six_steps(capsys, text, out)
    changed = ["--lr", "1e-3", "--clip", 1, "--steps", 12, "--validate-every", 4,
               "--checkpoint-every", 4]  # fmt: skip
    status, stdout, err = run_cli(capsys, *train(text, out, *changed, "--resume"))
    assert status == 0, err
    for message in (
        "learning rate 0.002 -> 0.001 from now on",
        "gradient clipping norm 5 -> 1 from now on",
        "total steps 6 -> 12 from now on",
        "steps between validations 10 -> 4 from now on",
        "steps between checkpoints 3 -> 4 from now on",
    ):
        assert message in err
    assert [r["lr"] for r in step_records(out)] == [0.002] * 6 + [0.001] * 6
    assert "resumed at step 6: trained steps 7 to 12 in " in stdout  # this process's part only
    assert "step 8: val_loss" in err  # validations every 4 steps now


@pytest.mark.parametrize(
    ("option", "value", "shown"),
    [
        ("--hidden", 32, "hidden 32 (the run's: 16)"),
        ("--cell", "gru", 'cell "gru" (the run\'s: "lstm")'),
        ("--batch", 2, "batch 2 (the run's: 4)"),
        ("--seq-len", 10, "seq_len 10 (the run's: 20)"),
        ("--seed", 1, "seed 1 (the run's: 0)"),
        ("--embedding", 12, "embedding 12 (the run's: 8)"),
        ("--val-fraction", 0.1, "val_fraction 0.1 (the run's: 0.05)"),
        ("--level", "word", 'level "word" (the run\'s: "char")'),
    ],
)
def test_resume_with_options_that_change_the_run_is_refused(
    text, tmp_path, capsys, option, value, shown
):
    out = tmp_path / "run"
    six_steps(capsys, text, out)
    log = (out / "metrics.jsonl").read_bytes()
    arguments = train(text, out, "--steps", 12, "--resume")
    at = arguments.index(option) if option in arguments else len(arguments)
    arguments[at : at + 2] = [option, value]
    result = run_cli(capsys, *arguments)
    assert_one_line_error(result, "rnnkit train", "with other model, data or batch options: ")
    assert shown in result[2] and "step-00000006.safetensors" in result[2]
    assert (out / "metrics.jsonl").read_bytes() == log  # nothing touched


def test_resume_past_the_runs_end_is_refused(text, tmp_path, capsys):
    out = tmp_path / "run"
    six_steps(capsys, text, out)
    result = run_cli(capsys, *train(text, out, "--steps", 4, "--resume"))
    assert_one_line_error(result, "rnnkit train", "is at step 6, past the end of this run (step 4)")


def test_classify_resume_applies_the_rate_and_refuses_other_sizes(tmp_path, capsys):
    """The same rules for every task with --resume (the classifier here, on numeric sequences)."""
    arguments, out = classifier_run(tmp_path, capsys)
    result = run_cli(capsys, *arguments, "--epochs", 2, "--layers", 2, "--resume")
    assert_one_line_error(result, "rnnkit train classify", "layers 2 (the run's: 1)")
    status, _, err = run_cli(capsys, *arguments, "--epochs", 2, "--lr", 0.01, "--resume")
    assert status == 0, err
    assert "learning rate 0.002 -> 0.01 from now on" in err
    assert "total steps 2 -> 4 from now on" in err
