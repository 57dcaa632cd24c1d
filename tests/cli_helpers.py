"""Running the rnnkit command in-process, as a user would see it: exit status, stdout, stderr."""

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
