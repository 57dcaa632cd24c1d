"""Running the rnnkit command in-process, as a user would see it: exit status, stdout, stderr."""

from pathlib import Path

import numpy as np

from rnnkit.cli import main


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """``(exit status, stdout, stderr)`` of ``rnnkit *args`` (argparse errors included)."""
    capsys.readouterr()  # drop earlier output
    try:
        status = main([str(arg) for arg in args])
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(result, prefix: str, message: str) -> None:
    status, _, err = result
    assert status == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"{prefix}: error: "), err
    assert message in err, err


def play_file(tmp_path_factory, text: str) -> Path:
    """``text`` in a play.txt of a new temporary folder: the training text of a test module."""
    path = tmp_path_factory.mktemp("text") / "play.txt"
    path.write_text(text, encoding="utf-8")
    return path


def classifier_run(tmp_path, capsys) -> tuple[list, Path]:
    """A 1-epoch classifier trained on 60 random numeric sequences (``tmp_path``/seq.npz): the
    arguments that trained it (without --epochs) and its run folder."""
    rng = np.random.default_rng(0)
    x, lengths = rng.standard_normal((60, 5, 2)), rng.integers(2, 6, 60)
    np.savez(tmp_path / "seq.npz", X=x, lengths=lengths, y=(x[:, 0, 0] > 0).astype(np.int64))
    out = tmp_path / "run"
    arguments = ["train", "classify", "--npz", tmp_path / "seq.npz", "--hidden", 4, "--out", out]
    status, _, err = run_cli(capsys, *arguments, "--epochs", 1)
    assert status == 0, err
    return arguments, out
