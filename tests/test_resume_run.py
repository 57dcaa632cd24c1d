"""``rnnkit train ... --resume`` from the run folder alone: the run's own options, a contradicting
option refused by name, a resumable one applied, no checkpoint refused, an interrupt that says
how to go on, a summary that times only this process's part, and the run's end validated."""

import json
import shlex
import shutil

import pytest

from cli_helpers import assert_one_line_error, classifier_run, play_file, run_cli
from rnnkit.io.models import load
from rnnkit.tasks import pipeline
from rnnkit.tasks.language_modeling import TASK, LanguageModelOptions
from rnnkit.train.trainer import Trainer

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind.\n" * 12
SMALL = ["--hidden", 8, "--layers", 1, "--embedding", 4, "--batch", 2, "--seq-len", 10]


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    return play_file(tmp_path_factory, TEXT)


def train(text, out, *options):
    """A 6-step run validated every 4 steps (so its end, step 6, is not a multiple)."""
    return ["train", "lm", "--text", text, "--out", out, *SMALL, "--steps", 6,
            "--validate-every", 4, "--checkpoint-every", 3, "--seed", 1, *options]  # fmt: skip


def losses(out) -> list[tuple]:
    """(kind, step, loss) of the steps and validations logged, without the wall-clock time."""
    lines = (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [
        (r["kind"], r["step"], r.get("loss", r.get("val_loss"))) for r in map(json.loads, lines)
    ]


@pytest.fixture(scope="module")
def whole(text, tmp_path_factory):
    """An unbroken run, to compare with."""
    out = tmp_path_factory.mktemp("whole") / "run"
    from rnnkit.cli import main

    assert main([str(arg) for arg in train(text, out)]) == 0
    return out


def interrupted_run(text, out, capsys, monkeypatch, after: int) -> str:
    """Train into ``out`` with Ctrl-C pressed after step ``after``; the error line."""
    take_step = Trainer._train_step

    def interrupting(trainer):
        if trainer.step == after:
            raise KeyboardInterrupt
        return take_step(trainer)

    monkeypatch.setattr(Trainer, "_train_step", interrupting)
    status, _, err = run_cli(capsys, *train(text, out))
    monkeypatch.undo()
    assert status == 130, err
    return err.strip().splitlines()[-1]


def test_the_final_validation_is_logged_when_steps_are_no_multiple(whole):
    assert [step for kind, step, _ in losses(whole) if kind == "validation"] == [4, 6]


def test_an_interrupted_run_resumes_from_its_folder_alone_as_if_unbroken(
    text, whole, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "run"
    line = interrupted_run(text, out, capsys, monkeypatch, after=4)
    command = f"rnnkit train lm --out {shlex.quote(str(out))} --resume"
    assert line == (
        f"rnnkit train: interrupted after step 4 of 6; the checkpoint of step 3 is kept; "
        f"resume with: {command}"
    )
    status, stdout, err = run_cli(capsys, *shlex.split(command)[1:])  # the command as printed
    assert status == 0, err
    assert "resumed from" in err and "at step 3" in err
    assert "resumed at step 3: trained steps 4 to 6 in " in stdout  # this process's part only
    assert " tokens/s)" in stdout
    assert losses(out) == losses(whole)
    assert load(out / "model.safetensors").params["head.weight"].shape == (len(set(TEXT)), 8)


def test_an_interrupt_before_the_first_checkpoint_says_none_was_written(
    text, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(Trainer, "_start_fresh", lambda trainer: (_ for _ in ()).throw(
        KeyboardInterrupt))  # fmt: skip
    status, _, err = run_cli(capsys, *train(text, tmp_path / "run"))
    assert status == 130
    assert err.strip() == "rnnkit train: interrupted after step 0 of 6; no checkpoint was written"


@pytest.mark.parametrize(
    ("option", "value", "shown"),
    [
        ("--hidden", 16, "hidden 16 (the run's: 8)"),
        ("--cell", "gru", 'cell "gru" (the run\'s: "lstm")'),
        ("--seed", 2, "seed 2 (the run's: 1)"),
    ],
)
def test_an_option_that_contradicts_the_run_is_refused_by_name(
    text, whole, tmp_path, capsys, option, value, shown
):
    out = tmp_path / "run"
    assert run_cli(capsys, *train(text, out, "--steps", 3))[0] == 0
    log = (out / "metrics.jsonl").read_bytes()
    result = run_cli(capsys, "train", "lm", "--out", out, "--resume", option, value)
    assert_one_line_error(result, "rnnkit train", "with other model, data or batch options: ")
    assert shown in result[2]
    assert (out / "metrics.jsonl").read_bytes() == log  # nothing touched


def test_resumable_and_agreeing_options_are_taken(text, whole, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(capsys, *train(text, out, "--steps", 3))[0] == 0
    arguments = ["train", "lm", "--out", out, "--resume", "--hidden", 8, "--steps", 6]
    status, stdout, err = run_cli(capsys, *arguments)
    assert status == 0, err
    assert "total steps 3 -> 6 from now on" in err
    assert "resumed at step 3: trained steps 4 to 6" in stdout
    step_losses = [value for value in losses(out) if value[0] == "step"]
    assert step_losses == [value for value in losses(whole) if value[0] == "step"]


def test_a_resume_without_a_checkpoint_is_refused(text, tmp_path, capsys):
    out = tmp_path / "mistyped"
    result = run_cli(capsys, "train", "lm", "--out", out, "--resume")
    assert_one_line_error(
        result, "rnnkit train", f"no checkpoint in {out} to resume from; give the folder of the"
    )
    assert not out.exists()  # nothing trained afresh, nothing written


def test_a_resume_as_another_task_names_the_runs_task(whole, capsys):
    result = run_cli(capsys, "train", "classify", "--out", whole, "--resume")
    assert_one_line_error(
        result, "rnnkit train classify", "trains a language model (task 'lm'), not a classifier"
    )


def test_a_used_folder_names_the_command_that_resumes_it(text, whole, capsys):
    result = run_cli(capsys, *train(text, whole))
    assert_one_line_error(
        result, "rnnkit train", f"resume it (rnnkit train lm --out {whole} --resume), give another"
    )
    assert "resume=True" not in result[2]


def test_the_python_api_says_resume_true_and_takes_defaults_from_the_run(text, tmp_path):
    out = tmp_path / "run"
    given = dict(texts=(str(text),), hidden=8, layers=1, embedding=4, batch=2, seq_len=10,
                 validate_every=4, checkpoint_every=3, seed=1, out=str(out))  # fmt: skip
    pipeline.train(TASK, LanguageModelOptions(steps=3, **given), say=lambda line: None)
    with pytest.raises(ValueError, match=r"resume it \(resume=True\), give another"):
        pipeline.train(TASK, LanguageModelOptions(steps=3, **given), say=lambda line: None)
    resumed = LanguageModelOptions(out=str(out), resume=True, steps=6)  # the rest: defaults
    summary = pipeline.train(TASK, resumed, say=lambda line: None)
    assert summary["resumed_at"] == 3 and summary["steps_run"] == 3 and summary["steps"] == 6
    assert load(out / "model.safetensors").params["head.weight"].shape[1] == 8
    with pytest.raises(ValueError, match="no checkpoint in .* to resume from"):
        pipeline.train(TASK, LanguageModelOptions(out=str(tmp_path / "none"), resume=True))


def test_a_classifier_resumes_from_its_folder_with_a_new_length(tmp_path, capsys):
    """Another task, its data file and an exclusive group (--epochs given, --steps left out)."""
    arguments, out = classifier_run(tmp_path, capsys)
    status, stdout, err = run_cli(capsys, "train", "classify", "--out", out, "--resume",
                                  "--epochs", 2)  # fmt: skip
    assert status == 0, err
    assert "total steps 2 -> 4 from now on" in err
    assert "resumed at step 2: trained steps 3 to 4" in stdout


def test_a_hostile_saved_option_is_refused_in_one_line(text, tmp_path, capsys):
    from rnnkit.io.safetensors import write_safetensors
    from rnnkit.train import checkpoints

    out = tmp_path / "run"
    assert run_cli(capsys, *train(text, out, "--steps", 3))[0] == 0
    for path in checkpoints.list_checkpoints(out / "checkpoints"):
        arrays, state = checkpoints.read_checkpoint(path)
        state["extra"]["options"]["tie_weights"] = "yes"
        write_safetensors(path, arrays, {"rnnkit": json.dumps(state)})
    result = run_cli(capsys, "train", "lm", "--out", out, "--resume")
    assert_one_line_error(result, "rnnkit train", "tie_weights is 'yes', not of type bool")


def test_resuming_a_finished_run_says_how_to_train_on(whole, tmp_path, capsys):
    out = shutil.copytree(whole, tmp_path / "run")  # the shared run stays as it is
    status, stdout, err = run_cli(capsys, "train", "lm", "--out", out, "--resume")
    assert status == 0, err
    assert "resumed at step 6: no steps left to train" in stdout
    assert "give a larger --steps or --epochs" in stdout
