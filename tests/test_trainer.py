"""The Trainer: exact resumption after SIGKILL, validation, best model, early stopping, schedules,
callbacks, failures, logs, checkpoints, progress; and the language-model task end to end."""

import contextlib
import io
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from rnnkit.data.vocabulary import Vocabulary
from rnnkit.io.models import load, load_with_extra
from rnnkit.models.language_model import LanguageModel
from rnnkit.models.sampling import complete
from rnnkit.tasks import pipeline
from rnnkit.tasks.language_modeling import (
    TASK,
    LanguageModelOptions,
    LanguageModelTask,
    evaluate_text,
)
from rnnkit.train import checkpoints
from rnnkit.train.losses import cross_entropy
from rnnkit.train.optim import SGD, Adam
from rnnkit.train.progress import Progress, format_duration
from rnnkit.train.schedules import ReduceLROnPlateau, StepLR
from rnnkit.train.trainer import Trainer

VOCAB = 7
TOKENS = np.random.default_rng(0).integers(0, VOCAB, 121)
TRAIN_IDS, VAL_IDS = TOKENS[:81], TOKENS[81:]  # 2 strips of 40 tokens: 5 windows of 8 per epoch


def tiny_model(cell: str = "lstm", layers: int = 1, dropout: float = 0.0) -> LanguageModel:
    return LanguageModel(VOCAB, 4, 6, layers, cell, dropout, seed=0)


def tiny_task() -> LanguageModelTask:
    return LanguageModelTask(TRAIN_IDS, VAL_IDS, batch_size=2, seq_len=8)


def make_trainer(out_dir=None, model=None, task=None, optimizer=None, **options) -> Trainer:
    model = model if model is not None else tiny_model()
    optimizer = optimizer if optimizer is not None else Adam(model, lr=0.01)
    task = task if task is not None else tiny_task()
    options.setdefault("progress", False)
    if "epochs" not in options:
        options.setdefault("steps", 10)
    return Trainer(model, optimizer, task, out_dir=out_dir, **options)


def read_log(out_dir) -> list[dict]:
    lines = (Path(out_dir) / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def read_log_lenient(out_dir) -> list[dict]:
    """The whole records of a log another process is writing (its last line may be half)."""
    records = []
    for line in (Path(out_dir) / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a half-written last line
            records.append(json.loads(line))
    return records


def steps_logged(out_dir) -> list[int]:
    return [record["step"] for record in read_log(out_dir) if record["kind"] == "step"]


def checkpoint_steps(out_dir) -> list[int]:
    found = checkpoints.list_checkpoints(Path(out_dir) / "checkpoints")
    return [int(path.stem.split("-")[1]) for path in found]


def values_logged(out_dir) -> list[tuple]:
    """(kind, step, loss) of every record: all but the wall-clock time."""
    return [(r["kind"], r["step"], r.get("loss", r.get("val_loss"))) for r in read_log(out_dir)]


def snapshot(model) -> dict:
    return {name: value.copy() for name, value in model.params.items()}


def assert_same_params(params: dict, expected: dict) -> None:
    assert params.keys() == expected.keys()
    for name, value in params.items():
        assert np.array_equal(value, expected[name]), name


class ScriptedTask(LanguageModelTask):
    """The tiny language-model task, with validation results read from a list."""

    def __init__(self, values) -> None:
        super().__init__(TRAIN_IDS, VAL_IDS, batch_size=2, seq_len=8)
        self.values = list(values)

    def validate(self, model) -> dict:
        return {"val_loss": self.values.pop(0), "val_other": 0.5}


class Recorder:
    """Callback recording every call; stops the run at ``stop_at`` if given."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.stop_at = stop_at
        self.steps, self.validations, self.ends = [], [], 0
        self.params = {}  # step -> parameters after that step

    def on_step(self, trainer, record) -> None:
        self.steps.append(record["step"])
        self.params[record["step"]] = snapshot(trainer.model)
        if record["step"] == self.stop_at:
            trainer.stop_reason = "asked to stop"

    def on_validation(self, trainer, record) -> None:
        self.validations.append(record["step"])

    def on_end(self, trainer) -> None:
        self.ends += 1


# ------------------------------------------------------------------- SIGKILL and exact resume

KILLABLE_RUN = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from rnnkit.models.language_model import LanguageModel
    from rnnkit.tasks.language_modeling import LanguageModelTask
    from rnnkit.train.optim import Adam
    from rnnkit.train.schedules import CosineAnnealingLR
    from rnnkit.train.trainer import Trainer

    ids = np.random.default_rng(0).integers(0, 11, 1300)
    # strips of 250 tokens: 23 windows per epoch (the last one 8 steps), so no checkpoint
    # (every 5 steps) falls on an epoch's end, where the carried state is reset anyway
    task = LanguageModelTask(ids[:1001], ids[1001:], batch_size=4, seq_len=11)
    model = LanguageModel(11, 6, 8, num_layers=2, cell="lstm", dropout=0.2, seed=1)
    optimizer = Adam(model, lr=0.02)

    class Slow:
        def on_step(self, trainer, record):
            time.sleep(0.015)

    trainer = Trainer(
        model, optimizer, task, out_dir=sys.argv[1], steps=80, clip_norm=0.5,
        schedule=CosineAnnealingLR(optimizer, T_max=4), validate_every=10,
        checkpoint_every=5, callbacks=[Slow()], progress=False,
    )
    trainer.fit(resume=sys.argv[2] == "resume")
    """
)


def test_killed_run_resumes_exactly(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(KILLABLE_RUN, encoding="utf-8")

    def run(out: Path, mode: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(script), str(out), mode],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip

    run_a, run_b = tmp_path / "a", tmp_path / "b"
    run(run_a, "fresh")

    process = subprocess.Popen(
        [sys.executable, str(script), str(run_b), "fresh"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    try:
        while (
            not (run_b / "metrics.jsonl").exists()
            or max([0, *(r["step"] for r in read_log_lenient(run_b))]) < 30
        ):
            assert time.monotonic() < deadline, "run B never reached step 30"
            assert process.poll() is None, "run B ended before it could be killed"
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    killed_at = max(r["step"] for r in read_log_lenient(run_b))
    assert 30 <= killed_at < 80

    resumed = run(run_b, "resume")
    start = int(resumed.stderr.split("resumed from ")[1].split(" at step ")[1].split()[0])
    assert 25 <= start <= killed_at and start % 23 != 0  # mid-epoch: a state is carried

    log_a, log_b = read_log(run_a), read_log(run_b)
    steps_b = [r for r in log_b if r["kind"] == "step"]
    assert [r["step"] for r in steps_b] == list(range(1, 81))
    assert [r["loss"] for r in steps_b] == [r["loss"] for r in log_a if r["kind"] == "step"]
    assert [r["lr"] for r in steps_b] == [r["lr"] for r in log_a if r["kind"] == "step"]
    validations = [(r["step"], r["val_loss"]) for r in log_b if r["kind"] == "validation"]
    assert [step for step, _ in validations] == list(range(10, 81, 10))
    assert validations == [(r["step"], r["val_loss"]) for r in log_a if r["kind"] == "validation"]

    arrays_a, state_a = checkpoints.read_checkpoint(run_a / "checkpoints/step-00000080.safetensors")
    arrays_b, state_b = checkpoints.read_checkpoint(run_b / "checkpoints/step-00000080.safetensors")
    assert arrays_a.keys() == arrays_b.keys()
    for name, value in arrays_a.items():  # parameters, Adam's moments, the carried state
        assert value.tobytes() == arrays_b[name].tobytes(), name
    assert state_a["generators"] == state_b["generators"]
    assert state_a["schedule"] == state_b["schedule"]
    assert_same_params(
        load(run_b / "best.safetensors").params, load(run_a / "best.safetensors").params
    )


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_single_array_state_is_carried_through_a_checkpoint(tmp_path, cell):
    """GRU and RNN carry one array ``h`` (not a tuple) between windows."""
    whole = make_trainer(tmp_path / "whole", model=tiny_model(cell, 2, 0.3), steps=8)
    whole.fit()
    first = make_trainer(tmp_path / "split", model=tiny_model(cell, 2, 0.3), steps=3)
    first.fit()  # the final checkpoint at step 3 holds the carry of window 3 (mid-epoch)
    second = make_trainer(tmp_path / "split", model=tiny_model(cell, 2, 0.3), steps=8)
    second.fit(resume=True)
    assert isinstance(second.carry, np.ndarray)
    logged = [
        value for value in values_logged(tmp_path / "split") if value[:2] != ("validation", 3)
    ]
    assert logged == values_logged(tmp_path / "whole")  # but the first run's end, validated
    assert_same_params(second.model.params, whole.model.params)


# ------------------------------------------------------------------- length, validation, best


def test_length_is_exactly_one_of_steps_or_epochs():
    model = tiny_model()
    with pytest.raises(ValueError, match="exactly one of steps or epochs"):
        Trainer(model, Adam(model), tiny_task(), steps=5, epochs=1)
    with pytest.raises(ValueError, match="exactly one of steps or epochs"):
        Trainer(model, Adam(model), tiny_task())
    trainer = make_trainer(epochs=2)
    assert trainer.total_steps == 10
    summary = trainer.fit()
    assert summary["steps"] == 10 and trainer.epoch == 2 and trainer.index == 0


@pytest.mark.parametrize("name", ["keep_checkpoints", "checkpoint_every", "validate_every"])
def test_counts_below_one_are_refused(name):
    with pytest.raises(ValueError, match=f"{name} must be"):
        make_trainer(**{name: 0})


def test_validation_every_n_steps_and_at_epoch_ends():
    by_steps = make_trainer(steps=10, validate_every=4)
    by_steps.fit()
    by_epochs = make_trainer(epochs=2)
    by_epochs.fit()
    # the run's end is validated too (and logged) when the steps are no multiple of 4
    assert [r["step"] for r in by_steps.history if r["kind"] == "validation"] == [4, 8, 10]
    assert [r["step"] for r in by_epochs.history if r["kind"] == "validation"] == [5, 10]
    assert by_epochs.last_validation["step"] == 10
    assert by_epochs.last_validation["val_loss"] == pytest.approx(
        tiny_task().validate(by_epochs.model)["val_loss"], rel=1e-12
    )


@pytest.mark.parametrize(("mode", "best_step"), [("min", 4), ("max", 8)])
def test_best_model_is_the_one_at_the_best_validation(tmp_path, mode, best_step):
    recorder = Recorder()
    trainer = make_trainer(
        tmp_path, task=ScriptedTask([3.0, 1.0, 2.0, 4.0]), steps=8, validate_every=2,
        mode=mode, callbacks=[recorder], extra={"note": "kept"},
    )  # fmt: skip
    summary = trainer.fit()
    assert summary["best"] == {"step": best_step, "val_loss": 1.0 if mode == "min" else 4.0}
    best, extra = load_with_extra(tmp_path / "best.safetensors")
    assert isinstance(best, LanguageModel) and extra == {"note": "kept"}
    assert_same_params(best.params, recorder.params[best_step])
    if best_step != 8:
        assert not np.array_equal(best.params["head.weight"], trainer.model.params["head.weight"])


def test_unknown_monitor_is_refused():
    trainer = make_trainer(validate_every=2, monitor="val_accuracy")
    with pytest.raises(ValueError, match="val_accuracy.*val_loss"):
        trainer.fit()


def test_early_stopping_stops_after_patience_validations(tmp_path, capsys):
    task = ScriptedTask([3.0, 1.0, 2.0, 1.5, 0.5, 0.4])
    trainer = make_trainer(tmp_path, task=task, steps=20, validate_every=2, patience=2)
    summary = trainer.fit()
    assert summary["steps"] == 8 and not summary["failed"]
    assert summary["stop_reason"].startswith("early stop at step 8: val_loss has not improved")
    assert summary["stop_reason"] in capsys.readouterr().err
    assert summary["best"] == {"step": 4, "val_loss": 1.0}
    assert checkpoint_steps(tmp_path)[-1] == 8  # the stopped run can still be resumed


# ------------------------------------------------------------------- schedules and callbacks


class RecordingPlateau(ReduceLROnPlateau):
    def step(self, metric) -> None:
        self.seen.append(metric)
        super().step(metric)


def test_plateau_schedule_gets_the_monitored_metric_at_each_validation():
    model = tiny_model()
    optimizer = Adam(model, lr=0.01)
    schedule = RecordingPlateau(optimizer, factor=0.5, patience=1)
    schedule.seen = []
    task = ScriptedTask([3.0, 2.0, 5.0, 6.0, 7.0])
    trainer = make_trainer(
        model=model, optimizer=optimizer, task=task, schedule=schedule, validate_every=3,
        steps=15,  # three epochs: the plateau schedule must not step at their ends
    )  # fmt: skip
    trainer.fit()
    assert schedule.seen == [3.0, 2.0, 5.0, 6.0, 7.0]
    rates = {r["step"]: r["lr"] for r in trainer.history if r["kind"] == "step"}
    assert rates[12] == 0.01 and rates[13] == 0.005  # halved after the 4th validation (step 12)


def test_epoch_schedules_step_at_each_epoch_end():
    model = tiny_model()
    optimizer = Adam(model, lr=0.01)
    trainer = make_trainer(
        model=model, optimizer=optimizer, schedule=StepLR(optimizer, step_size=1, gamma=0.5),
        epochs=3, validate_every=2,
    )  # fmt: skip
    trainer.fit()
    rates = [r["lr"] for r in trainer.history if r["kind"] == "step"]
    assert rates == [0.01] * 5 + [0.005] * 5 + [0.0025] * 5


def test_callbacks_are_called_and_can_stop_the_run(tmp_path):
    recorder = Recorder(stop_at=3)

    class OnlyStep:  # a callback may define only some of the methods
        calls = 0

        def on_step(self, trainer, record):
            OnlyStep.calls += 1

    trainer = make_trainer(tmp_path, validate_every=2, callbacks=[recorder, OnlyStep()])
    summary = trainer.fit()
    assert summary["stop_reason"] == "asked to stop" and summary["steps"] == 3
    assert not summary["failed"]
    assert recorder.steps == [1, 2, 3] and recorder.validations == [2] and recorder.ends == 1
    assert OnlyStep.calls == 3
    assert checkpoint_steps(tmp_path) == [0, 3]


def test_progress_is_shown_when_asked(capsys):
    make_trainer(steps=3, progress=True, progress_unit="tokens").fit()
    err = capsys.readouterr().err
    assert "step 3/3 | loss " in err and "tokens/s" in err and "\r" not in err


# ------------------------------------------------------------------- failures


class FaultyTask(LanguageModelTask):
    """The tiny task, with a NaN loss or an infinite gradient at one step."""

    def __init__(self, bad_step: int, fault: str) -> None:
        super().__init__(TRAIN_IDS, VAL_IDS, batch_size=2, seq_len=8)
        self.bad_step, self.fault = bad_step, fault

    def train_batch(self, model, epoch, index, carry):
        loss, count, carry = super().train_batch(model, epoch, index, carry)
        if epoch * self.batches_per_epoch() + index + 1 == self.bad_step:
            if self.fault == "nan loss":
                loss = float("nan")
            else:
                model.grads["head.bias"][1] = np.inf
        return loss, count, carry


@pytest.mark.parametrize(
    ("fault", "named"), [("nan loss", "the loss is nan"), ("inf gradient", "head.bias")]
)
def test_non_finite_loss_or_gradient_stops_without_stepping(tmp_path, fault, named, capsys):
    recorder = Recorder()
    trainer = make_trainer(
        tmp_path, task=FaultyTask(4, fault), steps=10, checkpoint_every=2, callbacks=[recorder]
    )
    summary = trainer.fit()
    assert summary["failed"] and summary["steps"] == 3
    assert summary["stop_reason"].startswith("stopped at step 4:")
    assert named in summary["stop_reason"] and summary["stop_reason"] in capsys.readouterr().err
    assert trainer.optimizer.step_count == 3
    assert_same_params(trainer.model.params, recorder.params[3])  # the bad step never applied
    assert checkpoint_steps(tmp_path) == [0, 2]  # no checkpoint after the failure
    assert steps_logged(tmp_path) == [1, 2, 3]

    again = make_trainer(tmp_path, steps=4)
    again.fit(resume=True)
    assert "resumed from" in capsys.readouterr().err and again.step == 4
    assert steps_logged(tmp_path) == [1, 2, 3, 4]


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_huge_learning_rate_stops_before_a_broken_checkpoint(tmp_path, capsys):
    model = tiny_model()
    optimizer = SGD(model, lr=0.1)

    recorder = Recorder()

    class Explode:
        def on_step(self, trainer, record):
            if record["step"] == 3:
                trainer.optimizer.lr = 1e40  # overflows float32 parameters at the next update

    trainer = make_trainer(
        tmp_path, model=model, optimizer=optimizer, checkpoint_every=1,
        callbacks=[recorder, Explode()],
    )  # fmt: skip
    summary = trainer.fit()
    assert summary["failed"] and summary["steps"] == 3
    assert summary["stop_reason"].startswith("stopped at step 4:")
    assert "not finite" in summary["stop_reason"]
    assert any(name in summary["stop_reason"] for name in model.params)
    assert checkpoint_steps(tmp_path) == [2, 3]
    arrays, state = checkpoints.read_checkpoint(
        checkpoints.list_checkpoints(tmp_path / "checkpoints")[-1]
    )
    assert state["step"] == 3 and all(np.isfinite(a).all() for a in arrays.values())
    reloaded = tiny_model()
    resumed = make_trainer(tmp_path, model=reloaded, optimizer=SGD(reloaded, lr=0.1), steps=3)
    resumed.fit(resume=True)  # loads the step-3 checkpoint; nothing is left to run
    assert "at step 3" in capsys.readouterr().err
    assert_same_params(reloaded.params, recorder.params[3])


# ------------------------------------------------------------------- logs and checkpoints


def test_metrics_log_has_one_record_per_step_epoch_and_validation(tmp_path):
    trainer = make_trainer(tmp_path, steps=10, validate_every=5)
    trainer.fit()
    records = read_log(tmp_path)
    per_epoch = trainer.batches_per_epoch
    expected = []
    for step in range(1, 11):
        expected.append(("step", step))
        if step % per_epoch == 0:
            expected.append(("epoch", step))
        if step % 5 == 0:
            expected.append(("validation", step))
    assert [(r["kind"], r["step"]) for r in records] == expected
    assert records == trainer.history
    first_epoch = [r["loss"] for r in records if r["kind"] == "step"][:per_epoch]
    epoch_records = [r for r in records if r["kind"] == "epoch"]
    assert epoch_records[0]["epoch"] == 0
    assert epoch_records[0]["loss"] == pytest.approx(sum(first_epoch) / per_epoch)
    steps = [r for r in records if r["kind"] == "step"]
    assert {"loss", "grad_norm", "lr", "count", "epoch", "time"} <= set(steps[0])
    assert all(r["count"] == 16 and math.isfinite(r["loss"]) for r in steps)  # 8 steps x 2


def test_half_written_log_line_is_dropped_on_resume(tmp_path):
    whole = make_trainer(tmp_path / "whole", steps=10)
    whole.fit()
    out = tmp_path / "killed"
    make_trainer(out, steps=8, checkpoint_every=5).fit()
    # A kill after step 8 was logged, before its checkpoint, in the middle of the next line:
    (out / "checkpoints/step-00000008.safetensors").unlink()
    with open(out / "metrics.jsonl", "a", encoding="utf-8") as log:
        log.write('{"kind": "step", "step": 9, "lo')
    resumed = make_trainer(out, steps=10)
    resumed.fit(resume=True)
    assert steps_logged(out) == list(range(1, 11))
    assert values_logged(out) == values_logged(tmp_path / "whole")


@pytest.mark.parametrize("keep", [2, 3])
def test_old_checkpoints_beyond_keep_are_removed(tmp_path, keep):
    make_trainer(tmp_path, steps=9, checkpoint_every=2, keep_checkpoints=keep).fit()
    assert checkpoint_steps(tmp_path) == [0, 2, 4, 6, 8, 9][-keep:]


def test_a_single_kept_checkpoint_is_refused():
    """The older checkpoint is what a resume falls back to (a damaged newest, a divergence)."""
    with pytest.raises(ValueError, match="keep_checkpoints must be at least 2"):
        make_trainer(keep_checkpoints=1)


def test_a_run_without_checkpoint_starts_afresh(tmp_path):
    fresh = make_trainer(tmp_path / "fresh", steps=6)
    fresh.fit()
    out = tmp_path / "again"
    out.mkdir()
    # a run killed before its first checkpoint left a log behind
    (out / "metrics.jsonl").write_text('{"kind": "step", "step": 1, "loss": 9.0}\n{"kind"')
    again = make_trainer(out, steps=6)
    again.fit()
    assert steps_logged(out) == list(range(1, 7))
    assert_same_params(again.model.params, fresh.model.params)


@pytest.mark.parametrize("made", [True, False])
def test_a_resume_without_checkpoint_is_refused(tmp_path, made):
    """A mistyped folder, or one whose run was killed before its first checkpoint: refused,
    not trained afresh (it used to start a whole run silently)."""
    out = tmp_path / "run"
    if made:
        (out / "checkpoints").mkdir(parents=True)
        (out / "metrics.jsonl").write_text('{"kind": "step", "step": 1, "loss": 9.0}\n')
    with pytest.raises(ValueError, match=f"no checkpoint in {out} to resume from; give the"):
        make_trainer(out, steps=6).fit(resume=True)
    assert not (out / "checkpoints").exists() or not any((out / "checkpoints").iterdir())
    assert made == (out / "metrics.jsonl").exists()


def test_a_fresh_run_refuses_an_earlier_runs_checkpoints(tmp_path):
    make_trainer(tmp_path, steps=10, checkpoint_every=5).fit()
    log = (tmp_path / "metrics.jsonl").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="step-00000010.safetensors.*resume"):
        make_trainer(tmp_path, steps=6, checkpoint_every=3).fit()
    assert checkpoint_steps(tmp_path) == [5, 10]  # nothing lost
    assert (tmp_path / "metrics.jsonl").read_text(encoding="utf-8") == log


def test_resume_needs_an_output_directory():
    with pytest.raises(ValueError, match="resume needs out_dir"):
        make_trainer().fit(resume=True)


# ------------------------------------------------------------------- progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_prints_plain_lines_off_a_terminal():
    stream = io.StringIO()
    progress = Progress(4, stream=stream, every=2, unit="tokens")
    for step in range(1, 5):
        progress.update(step, loss=1.0 / step, count=10)
    progress.message("step 4: val_loss 0.1234")
    progress.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and "\033" not in stream.getvalue()
    assert [line.split(" | ")[0] for line in lines[:2]] == ["step 2/4", "step 4/4"]
    assert lines[1].startswith("step 4/4 | loss 0.2500 | ") and "tokens/s" in lines[1]
    assert lines[2:] == ["step 4: val_loss 0.1234"]


def test_progress_redraws_one_line_on_a_terminal():
    stream = Terminal()
    progress = Progress(4, stream=stream, unit="tokens")
    progress.update(1, loss=2.0, count=10)
    progress.update(4, loss=0.5, count=10)  # the last step is always drawn
    drawn = stream.getvalue()
    assert drawn.startswith("\rstep 1/4 | loss 2.0000") and "\rstep 4/4 | loss 0.5000" in drawn
    assert "\n" not in drawn  # redrawn in place
    progress.message("saved")
    progress.close()
    assert stream.getvalue()[len(drawn) :] == "\r\033[Ksaved\n\n"


def test_format_duration():
    assert [format_duration(s) for s in (42, 185, 3720)] == ["42s", "3m05s", "1h02m"]


# ------------------------------------------------------------------- the language-model task

TEXT = "".join(
    f"line {i}: the quick brown fox jumps over the lazy dog, and the cat sat on the mat.\n"
    for i in range(40)
)  # about 3.3 KB


def test_language_model_task_end_to_end(tmp_path):
    text_path = tmp_path / "tiny.txt"
    text_path.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "run"
    options = LanguageModelOptions(
        texts=(str(text_path),), steps=20, hidden=16, layers=1, batch=4, seq_len=16,
        embedding=8, out=str(out), checkpoint_every=10, validate_every=10,
    )  # fmt: skip
    said = []
    summary = pipeline.train(TASK, options, say=said.append)
    assert not summary["failed"] and summary["steps"] == 20
    assert "vocabulary of" in said[0]
    assert (out / "model.safetensors").is_file() and (out / "best.safetensors").is_file()
    assert checkpoint_steps(out) == [10, 20]
    records = read_log(out)
    assert [r["step"] for r in records if r["kind"] == "step"] == list(range(1, 21))
    assert [r["step"] for r in records if r["kind"] == "validation"] == [10, 20]
    assert summary["val_loss"] == records[-1]["val_loss"]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    else:
        assert (out / "loss.png").stat().st_size > 0

    model, extra = load_with_extra(out / "model.safetensors")
    vocabulary = Vocabulary.from_json(extra["vocabulary"])
    assert all(name in model.params for name in ("embedding.weight", "head.bias"))
    sample = complete(model, vocabulary, "the ", 37, temperature=0.8, seed=0)
    assert len(sample) == 37 and set(sample) <= set(vocabulary.tokens)

    scores = evaluate_text(model, vocabulary, TEXT)
    assert scores["tokens"] == len(TEXT) - 1
    assert scores["perplexity"] == pytest.approx(math.exp(scores["loss"]), rel=1e-12)
    ids = vocabulary.encode(TEXT)
    logits, _ = model(ids[:-1, None])  # the whole text in one window: (T, 1, V)
    loss, _ = cross_entropy(logits, ids[1:, None])
    assert scores["loss"] == pytest.approx(loss, rel=1e-5)  # evaluate_text carries the state


def test_bits_per_char_is_the_loss_in_bits_for_a_character_model():
    vocabulary = Vocabulary.from_text(TEXT)
    model = LanguageModel(len(vocabulary), 4, 6, 1, "lstm", seed=0)
    scores = evaluate_text(model, vocabulary, TEXT)
    assert scores["bits_per_char"] == pytest.approx(scores["loss"] / math.log(2), rel=1e-12)
