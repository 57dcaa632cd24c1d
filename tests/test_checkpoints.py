"""Checkpoints read back by a resume: every entry checked, a damaged newest file skipped for the
older one, stale temporary files removed; and the divergence rule's checkpoints."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from rnnkit.errors import UserError
from rnnkit.io import files
from rnnkit.io.safetensors import read_safetensors, write_safetensors
from rnnkit.models.language_model import LanguageModel
from rnnkit.tasks.language_modeling import LanguageModelTask
from rnnkit.train import checkpoints
from rnnkit.train.optim import Adam
from rnnkit.train.trainer import DIVERGENCE_WINDOW, Trainer

TOKENS = np.random.default_rng(0).integers(0, 7, 121)
PER_EPOCH = 5  # 2 strips of 40 tokens: 5 windows of 8


def make_trainer(out_dir, steps: int = 6, task=None, **options) -> Trainer:
    model = LanguageModel(7, 4, 6, 2, "lstm", dropout=0.2, seed=0)  # dropout: generators
    task = task if task is not None else LanguageModelTask(TOKENS[:81], TOKENS[81:], 2, 8)
    options.setdefault("checkpoint_every", 2)
    return Trainer(
        model, Adam(model, lr=0.01), task, out_dir=out_dir, steps=steps, progress=False, **options
    )


def checkpoint_steps(out_dir) -> list[int]:
    found = checkpoints.list_checkpoints(Path(out_dir) / "checkpoints")
    return [int(path.stem.split("-")[1]) for path in found]


def logged_losses(out_dir) -> list[tuple[int, float]]:
    lines = (Path(out_dir) / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, lines) if r["kind"] == "step"]


def edit_state(path: Path, edit) -> None:
    """Rewrite the JSON state of the checkpoint at ``path`` with ``edit(state)``."""
    arrays, metadata = read_safetensors(path)
    state = json.loads(metadata["rnnkit"])
    edit(state)
    write_safetensors(path, arrays, {"rnnkit": json.dumps(state)})


@pytest.fixture
def run(tmp_path):
    """A run of 6 steps; its checkpoints at steps 4 and 6 (4 is the older one kept)."""
    make_trainer(tmp_path).fit()
    assert checkpoint_steps(tmp_path) == [4, 6]
    return tmp_path


def newest(out_dir) -> Path:
    return checkpoints.list_checkpoints(out_dir / "checkpoints")[-1]


# ------------------------------------------------------------------- hostile checkpoint states


def setter(key, value):
    def edit(state):
        state[key] = value

    return edit


def remover(key):
    def edit(state):
        del state[key]

    return edit


def far_step(step):
    def edit(state):
        state.update(step=step, epoch=step // PER_EPOCH, index=step % PER_EPOCH)

    return edit


def generator_state(change):
    def edit(state):
        change(state["generators"]["input_dropout.rng"])

    return edit


HOSTILE = {
    "step 1e12": (far_step(10**12), "at step 1000000000000, past the end of this run"),
    "step 1e12 as a float": (setter("step", 1e12), "step is 1000000000000.0, not a whole number"),
    "step -5": (setter("step", -5), "step is -5: it must be at least 0"),
    "step off its epoch and index": (setter("step", 5), "make step 6"),
    "index past the epoch": (setter("index", PER_EPOCH), "index is 5: it must be at most 4"),
    "no step": (remover("step"), "step is missing"),
    "no optimizer": (remover("optimizer"), "optimizer is missing"),
    "optimizer a list": (setter("optimizer", [1]), "optimizer is a list of 1 items, not an object"),
    "optimizer lr a string": (
        lambda state: state["optimizer"].update(lr="big"),
        "Adam: lr must be",
    ),
    "no generators": (remover("generators"), "generators is missing"),
    "generators renamed": (setter("generators", {"x": {}}), "generators names ['x']"),
    "generator state not an object": (generator_state(lambda g: g.clear()), "is not a state"),
    "generator state negative": (
        generator_state(lambda g: g["state"].update(state=-1)),
        "OverflowError",
    ),
    "generator state a float": (
        generator_state(lambda g: g["state"].update(state=1.5)),
        "NumPy read it differently",
    ),
    "generator of another kind": (
        generator_state(lambda g: g.update(bit_generator="MT19937")),
        "state must be for a PCG64 RNG",
    ),
    "no carry_parts": (remover("carry_parts"), "carry_parts is missing"),
    "one carry part as an array": (setter("carry_is_array", True), "carry_parts is 2, not 1"),
    "more carry parts than tensors": (
        lambda state: state.update(carry_parts=3, carry_is_array=False),
        "the tensors ['carry/2'] are missing",
    ),
    "carry_is_array a string": (setter("carry_is_array", "yes"), "carry_is_array is 'yes'"),
    "best without its metric": (setter("best", {"step": 2}), "best.val_loss is missing"),
    "bad_validations negative": (setter("bad_validations", -1), "bad_validations is -1"),
    "recent losses not numbers": (setter("recent_losses", ["x"]), "recent_losses[0] is 'x'"),
    "settings lr missing": (setter("settings", {"total_steps": 6}), "settings.lr is missing"),
    "extra a string": (setter("extra", "x"), "extra is 'x', not an object"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_checkpoint_state_is_refused_in_one_line(run, case):
    edit, message = HOSTILE[case]
    edit_state(newest(run), edit)
    with pytest.raises(UserError) as error:
        make_trainer(run, steps=8).fit(resume=True)
    text = str(error.value)
    assert message in text and str(newest(run)) in text and "\n" not in text


def test_a_missing_carried_tensor_is_refused(run):
    arrays, metadata = read_safetensors(newest(run))
    del arrays["carry/1"]  # c of the LSTM's (h, c)
    write_safetensors(newest(run), arrays, metadata)
    with pytest.raises(UserError, match=r"carry_parts is 2, but the tensors \['carry/1'\] are"):
        make_trainer(run, steps=8).fit(resume=True)


def test_a_step_past_the_runs_end_is_refused(run):
    with pytest.raises(UserError, match="at step 6, past the end of this run .step 4.; give more"):
        make_trainer(run, steps=4).fit(resume=True)


def test_a_checkpoint_of_another_model_names_the_file(run):
    model = LanguageModel(7, 4, 5, 2, "lstm", seed=0)  # hidden 5, not 6
    trainer = Trainer(model, Adam(model), LanguageModelTask(TOKENS[:81], TOKENS[81:], 2, 8),
                      out_dir=run, steps=8, progress=False)  # fmt: skip
    with pytest.raises(UserError, match=f"checkpoint {newest(run)}: state_dict"):
        trainer.fit(resume=True)


# ------------------------------------------------------------------- damaged newest, temp files


@pytest.mark.parametrize("damage", ["truncated", "emptied", "not a checkpoint"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_older_one(tmp_path, run, damage, capsys):
    whole = make_trainer(tmp_path / "whole", steps=8)
    whole.fit()
    path = newest(run)
    data = path.read_bytes()
    if damage == "not a checkpoint":
        write_safetensors(path, {"x": np.zeros(2)}, {"rnnkit": "{}"})
    else:
        path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    resumed = make_trainer(run, steps=8)
    resumed.fit(resume=True)
    err = capsys.readouterr().err
    assert f"the checkpoint {path} cannot be read, so the older step-00000004.safetensors" in err
    assert "at step 4" in err
    assert logged_losses(run) == logged_losses(tmp_path / "whole")
    for name, value in resumed.model.params.items():
        assert np.array_equal(value, whole.model.params[name]), name


def test_no_readable_checkpoint_is_one_error(run):
    for path in checkpoints.list_checkpoints(run / "checkpoints"):
        path.write_bytes(b"\0" * 3)
    with pytest.raises(UserError, match="no checkpoint in .* can be read .step-00000006"):
        make_trainer(run, steps=8).fit(resume=True)


def test_log_lines_that_are_not_step_records_are_dropped_on_resume(run):
    log = run / "metrics.jsonl"
    records = log.read_bytes()
    log.write_bytes(records + b'{}\n[1]\n{"step": "x"}\n"text"\n\xff\xfe\n{"kind": "st')
    make_trainer(run, steps=8).fit(resume=True)
    steps = [json.loads(line)["step"] for line in log.read_text(encoding="utf-8").splitlines()]
    assert steps == sorted(steps) and steps[-1] == 8


def kept_temp_file(monkeypatch, directory: Path, write) -> Path:
    """The temporary file ``write()`` leaves in ``directory`` when killed before its rename."""
    real_replace = os.replace

    def killed(source, target):
        real_replace(source, Path(source).with_suffix(".kept"))
        raise KeyboardInterrupt  # the write stops here, as if killed

    monkeypatch.setattr(files.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write()
    monkeypatch.setattr(files.os, "replace", real_replace)
    (kept,) = directory.glob("*.kept")
    return kept.rename(kept.with_suffix(".tmp"))


def test_temporary_files_of_a_killed_write_are_removed(run, monkeypatch, capsys):
    """The names are those atomic_write_bytes gives (the writes below stop before the rename)."""
    trainer = make_trainer(run, steps=8)
    leftovers = [
        kept_temp_file(monkeypatch, run / "checkpoints", trainer.save_checkpoint),
        kept_temp_file(monkeypatch, run, lambda: write_safetensors(run / "model.safetensors", {})),
        kept_temp_file(monkeypatch, run, lambda: files.atomic_write_bytes(run / "m.jsonl", b"")),
    ]
    assert [path.name[:6] for path in leftovers] == [".step-", ".model", ".m.jso"]
    others = [run / ".notes.txt.0123456789ab.tmp", run / "checkpoints" / "mine.tmp"]
    for path in others:
        path.write_text("not rnnkit's")
    trainer.fit(resume=True)
    err = capsys.readouterr().err
    assert "removed temporary files left by an interrupted write: " in err
    assert not any(path.exists() for path in leftovers)
    assert all(path.exists() for path in others)
    assert all(path.name in err for path in leftovers)


# ------------------------------------------------------------------- the divergence rule


class ScaledLoss(LanguageModelTask):
    """The tiny task, its loss at some steps (counted from 1) multiplied by a factor. The first
    DIVERGENCE_WINDOW calls, the trainer's initial loss, are left alone."""

    def __init__(self, factors: dict[int, float]) -> None:
        super().__init__(TOKENS[:81], TOKENS[81:], 2, 8)
        self.factors = factors
        self.calls = 0

    def train_batch(self, model, epoch, index, carry):
        loss, count, carry = super().train_batch(model, epoch, index, carry)
        self.calls += 1
        step = self.calls - DIVERGENCE_WINDOW
        return loss * self.factors.get(step, 1.0), count, carry


def test_the_initial_loss_is_taken_without_changing_the_run(tmp_path):
    checked = make_trainer(tmp_path / "a", steps=8)
    checked.fit()
    unchecked = make_trainer(tmp_path / "b", steps=8, divergence_factor=None)
    unchecked.fit()
    assert logged_losses(tmp_path / "a") == logged_losses(tmp_path / "b")
    first = [loss for _, loss in logged_losses(tmp_path / "a")[:DIVERGENCE_WINDOW]]
    assert checked.initial_loss == pytest.approx(np.mean(first), rel=0.2)
    assert unchecked.initial_loss is None


def test_a_single_spike_does_not_stop_the_run_but_delays_checkpoints(tmp_path):
    trainer = make_trainer(tmp_path, steps=10, task=ScaledLoss({3: 1e4}), checkpoint_every=1)
    written = []
    real_save = trainer.save_checkpoint
    trainer.save_checkpoint = lambda: written.append(trainer.step) or real_save()
    summary = trainer.fit()
    assert not summary["failed"] and summary["steps"] == 10
    # step 3's loss is over the limit: no checkpoint until 5 steps in a row are under it again
    assert written == [0, 1, 2, 8, 9, 10]


@pytest.mark.parametrize("ending", ["diverges", "goes non-finite"])
def test_a_failing_run_keeps_only_checkpoints_from_before_it_went_wrong(tmp_path, ending, capsys):
    factors = dict.fromkeys(range(5, 12), 100.0)  # over the limit from step 5
    if ending == "goes non-finite":
        factors[6] = math.nan  # before the median is over the limit
    trainer = make_trainer(tmp_path, steps=20, task=ScaledLoss(factors), checkpoint_every=1)
    summary = trainer.fit()
    reason = summary["stop_reason"]
    stopped = 7 if ending == "diverges" else 6  # at 7, 3 of the last 5 losses are over it
    assert summary["failed"] and summary["steps"] == stopped - 1
    assert reason.startswith(f"stopped at step {stopped}: ")
    if ending == "diverges":
        assert "the loss diverged: the median of the last 5 step losses" in reason
        assert "first over that at step 5" in reason
    else:
        assert "the loss is nan" in reason
    # step 4's weights made step 5's loss: removed; step 3's is the newest kept
    assert "removed step-00000004.safetensors" in reason
    assert checkpoint_steps(tmp_path) == [3]
    assert "the last good checkpoint, step-00000003.safetensors, is kept" in reason
    assert reason in capsys.readouterr().err


def test_a_loss_first_over_the_limit_at_step_1_keeps_step_0(tmp_path):
    trainer = make_trainer(tmp_path, task=ScaledLoss(dict.fromkeys(range(1, 7), 100.0)))
    summary = trainer.fit()
    assert summary["failed"] and checkpoint_steps(tmp_path) == [0]


def test_the_irnn_example_spikes_and_trains_on(monkeypatch):
    """examples/vanishing_gradients.py's IRNN: at step 2 the loss is thousands of times the
    initial loss (gradient norm over 1e6, clipped), and the run is healthy again at once."""
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "examples"))
    from adding_problem import AddingTask
    from vanishing_gradients import build

    model = build("IRNN", 64, 0)
    task = AddingTask(64, 100, 0)
    trainer = Trainer(model, Adam(model, lr=3e-3), task, steps=40, clip_norm=1.0,
                      validate_every=40, monitor="val_mse", progress=False)  # fmt: skip
    summary = trainer.fit()
    steps = [record for record in trainer.history if record["kind"] == "step"]
    assert not summary["failed"] and len(steps) == 40
    assert max(record["loss"] for record in steps) > 1000 * trainer.initial_loss
    assert max(record["grad_norm"] for record in steps) > 1e6
