"""Fuzzing the command as an attacker, a careless user and a broken file system would.

Every command that loads a model gets hostile model files (tests/hostile.py); every path option
gets a FIFO, a directory and a missing path; the training options get values out of range.
Whatever comes, the command must end with status 0, 1 (a run that failed, e.g. diverged) or 2,
never with a traceback or an internal error, never read a file nobody named on its command line,
and never print a secret planted where a model file points. A longer, audited run of the same
edits over 1,000 files, each in its own process: ``python benchmarks/fuzz_cli.py``.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hostile
from cli_helpers import play_file
from rnnkit.cli import main

_opened: list[str] | None = None  # the paths opened while recording, else None


def _audit(event: str, args: tuple) -> None:
    recorded = event in ("open", "os.listdir", "os.scandir") and args and _opened is not None
    if recorded and isinstance(args[0], str | bytes | os.PathLike):
        _opened.append(os.path.realpath(os.fsdecode(args[0])))


sys.addaudithook(_audit)  # cannot be removed: it records only inside ``command``


def command(*args, seconds: int = 60) -> tuple[int, str, list[str]]:
    """``(status, stdout + stderr, paths opened)`` of ``rnnkit *args`` run in-process; a run
    longer than ``seconds`` (a FIFO read, say) fails the test instead of hanging it."""
    global _opened

    def hung(signum, frame):
        raise TimeoutError(f"rnnkit {' '.join(map(str, args))} ran over {seconds} s")

    output = io.StringIO()
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    _opened = []
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            try:
                status = main([str(arg) for arg in args])
            except SystemExit as exit_:
                status = exit_.code
    finally:
        opened, _opened = _opened, None
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return status, output.getvalue(), opened


def assert_handled(status, output: str) -> None:
    """Exit 0, 1 or 2, no traceback, no internal error; an error ends with its one line."""
    assert status in (0, 1, 2), (status, output)
    assert "Traceback" not in output and "internal error" not in output, output
    if status == 2:
        last = output.strip().splitlines()[-1]
        assert last.startswith("rnnkit") and ": error: " in last, output


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    secret = folder / "secret.txt"
    secret.write_text(hostile.CANARY)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        trained = hostile.train_seeds(folder / "seeds")
    return folder, secret, trained


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(hostile.KINDS)), seed=st.integers(0, 2**32 - 1))
def test_hostile_model_files_through_every_command(seeds, kind, seed):
    folder, secret, trained = seeds
    description, data = next(hostile.variants(trained[kind]["model"], np.random.default_rng(seed),
                                              secret))  # fmt: skip
    path = folder / f"hostile-{kind}.safetensors"
    path.write_bytes(data)
    for argv in hostile.commands(trained[kind], path):
        status, output, opened = command(*argv)
        assert_handled(status, output)
        assert hostile.CANARY not in output, (description, argv)
        named = {os.path.realpath(arg) for arg in argv if os.path.exists(arg)}
        outside = [p for p in opened if p.startswith(str(folder)) and not hostile.under(p, named)]
        assert not outside, (description, argv, outside)


def test_a_run_folder_with_only_its_last_checkpoint_resumes(seeds, tmp_path):
    _, _, trained = seeds
    checkpoint = trained["checkpoint"]
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)  # no metrics.jsonl: a resume drew from it
    (run / "checkpoints" / checkpoint["model"].name).write_bytes(checkpoint["model"].read_bytes())
    status, output, _ = command(*checkpoint["train"], "--resume", "--out", run)
    assert status == 0, output
    assert (run / "model.safetensors").is_file()


def test_a_beam_too_wide_is_refused_not_searched(seeds):
    _, _, trained = seeds
    model = trained["seq2seq"]["model"]
    status, output, _ = command("predict", model, "--input", "abc", "--beam", "1000000000",
                                seconds=20)  # fmt: skip
    assert status == 2 and "beam must be in [1, 100]" in output, output


@pytest.fixture
def odd_paths(tmp_path):
    """A FIFO, a directory and a missing path."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return {"FIFO": fifo, "directory": tmp_path, "missing": tmp_path / "missing.txt"}


PATH_COMMANDS = [
    ["generate", "{path}"],
    ["evaluate", "{path}"],
    ["predict", "{path}"],
    ["diagnose", "{path}", "--text", "{path}"],
    ["train", "--text", "{path}", "--out", "{out}"],
    ["train", "classify", "--csv", "{path}", "--out", "{out}"],
    ["train", "classify", "--npz", "{path}", "--out", "{out}"],
    ["train", "forecast", "--csv", "{path}", "--target", "x", "--out", "{out}"],
    ["train", "seq2seq", "--tsv", "{path}", "--out", "{out}"],
]


@pytest.mark.parametrize("kind", ["FIFO", "directory", "missing"])
@pytest.mark.parametrize("args", PATH_COMMANDS, ids=lambda args: " ".join(args[:3]))
def test_paths_that_are_not_files_are_refused_at_once(odd_paths, tmp_path, kind, args):
    path = odd_paths[kind]
    status, output, _ = command(
        *[arg.format(path=path, out=tmp_path / "out") for arg in args], seconds=20
    )
    assert status == 2, output
    assert len(output.strip().splitlines()) == 1 and str(path) in output, output
    expected = {"FIFO": "FIFO", "directory": "directory", "missing": "no such file"}[kind]
    assert expected in output, output
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_an_unreadable_file_is_one_line_naming_it(tmp_path):
    text = tmp_path / "locked.txt"
    text.write_text("some text")
    text.chmod(0)
    status, output, _ = command("train", "--text", text, "--out", tmp_path / "out")
    assert status == 2 and str(text) in output and "ermission" in output, output


OPTION_VALUES = ["-1", "0", "nan", "inf", "1e400", "abc", "", "10000000000000", "2.5", "-0"]
LM_OPTIONS = ["--hidden", "--layers", "--embedding", "--batch", "--seq-len", "--lr", "--clip",
              "--dropout", "--val-fraction", "--min-count", "--seed", "--validate-every",
              "--checkpoint-every", "--level", "--cell"]  # fmt: skip
DIAGNOSE_OPTIONS = ["--length", "--hidden", "--layers", "--seed", "--forget-bias",
                    "--spectral-radius", "--cell", "--init"]  # fmt: skip


@pytest.fixture(scope="module")
def small_text(tmp_path_factory):
    return play_file(tmp_path_factory, hostile.TEXT)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(option=st.sampled_from(LM_OPTIONS), value=st.sampled_from(OPTION_VALUES))
def test_training_options_out_of_range(small_text, tmp_path, option, value):
    out = tmp_path / f"out{abs(hash((option, value)))}"
    status, output, _ = command(
        "train", "--text", small_text, "--steps", "1", "--hidden", "8", "--embedding", "4",
        "--batch", "2", "--seq-len", "8", option, value, "--out", out,
    )  # fmt: skip
    assert_handled(status, output)
    if status == 2:
        assert not out.exists(), output  # nothing written before the refusal


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(option=st.sampled_from(DIAGNOSE_OPTIONS), value=st.sampled_from(OPTION_VALUES))
def test_diagnose_options_out_of_range(option, value):
    status, output, _ = command("diagnose", "--length", "20", "--hidden", "8", option, value)
    assert_handled(status, output)


def test_sizes_too_large_for_the_machine_are_refused_with_the_estimate(small_text, tmp_path):
    status, output, _ = command("train", "--text", small_text, "--hidden", "100000", "--batch",
                                "2", "--seq-len", "8", "--out", tmp_path / "out")  # fmt: skip
    assert status == 2 and "TiB" in output and "may use" in output, output
    assert not (tmp_path / "out").exists()
    status, output, _ = command("diagnose", "--length", "100000", "--hidden", "2000")
    assert status == 2 and "GiB" in output and "may use" in output, output


def test_an_internal_error_says_it_is_one_and_debug_shows_the_traceback(monkeypatch, small_text):
    from rnnkit.tasks import language_modeling

    def broken(path):
        raise KeyError("a bug")

    monkeypatch.setattr(language_modeling, "load_language_model", broken)
    status, output, _ = command("generate", small_text)
    assert status == 1 and "internal error: KeyError" in output and "bug in rnnkit" in output
    assert "--debug" in output and "Traceback" not in output
    with pytest.raises(KeyError):
        main(["generate", str(small_text), "--debug"])


def test_numpy_warnings_do_not_print_before_the_message(small_text, tmp_path):
    # a process of its own: pytest would catch the warnings before they reach stderr
    result = subprocess.run(
        [sys.executable, "-m", "rnnkit.cli", "train", "--text", str(small_text), "--steps", "20",
         "--hidden", "8", "--batch", "2", "--seq-len", "8", "--lr", "1e38",
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Warning" not in result.stderr, result.stderr


def test_a_disk_error_names_the_file(monkeypatch, tmp_path):
    import errno

    import rnnkit
    from rnnkit.io import files

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "write", full)
    target = tmp_path / "model.safetensors"
    with pytest.raises(OSError, match=f"cannot write {target}: No space left on device"):
        rnnkit.save(rnnkit.LSTM(2, 3, seed=0), target)
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_a_picture_is_never_left_half_written(monkeypatch, tmp_path):
    """A picture written straight to its file is half a file when the write fails midway."""
    pytest.importorskip("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from rnnkit.diagnostics import diagnose_fresh, plot_grad_norms

    print_png = FigureCanvasAgg.print_png

    def failing_on_files(canvas, target, **options):
        if isinstance(target, io.BytesIO):  # drawn in memory: nothing on disk yet
            return print_png(canvas, target)
        with contextlib.ExitStack() as stack:
            file = target if hasattr(target, "write") else stack.enter_context(open(target, "wb"))
            file.write(b"\x89PNG half")
            raise OSError("the disk went away")

    picture = tmp_path / "norms.png"
    picture.write_bytes(b"the old picture")
    monkeypatch.setattr(FigureCanvasAgg, "print_png", failing_on_files)
    with contextlib.suppress(OSError):
        plot_grad_norms(diagnose_fresh("rnn", length=5, hidden=4, seed=0), picture)
    written = picture.read_bytes()
    assert written == b"the old picture" or (written[:4] == b"\x89PNG" and len(written) > 1000)
    assert [path.name for path in tmp_path.iterdir()] == ["norms.png"]


def test_a_seed_below_zero_says_what_a_seed_must_be(tmp_path):
    for args in (["train"], ["generate", "model.safetensors"], ["diagnose"]):
        status, output, _ = command(*args, "--seed", "-1")
        assert status == 2 and "seed must be a whole number >= 0" in output, output
