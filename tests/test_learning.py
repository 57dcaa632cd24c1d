"""Learning: small real tasks must actually learn, within a stated number of steps."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "adding_problem.py"


def load_example():
    spec = importlib.util.spec_from_file_location("adding_problem", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_lstm_solves_the_adding_problem_at_length_50_within_3000_steps(capsys):
    adding_problem = load_example()
    test_mse = adding_problem.main(
        ["--cell", "lstm", "--length", "50", "--steps", "3000", "--batch", "64", "--seed", "0",
         "--target", "0.005"]
    )  # fmt: skip
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1].startswith("test_mse: ")
    steps = int(printed[-2].removeprefix("steps: "))
    assert steps <= 3000
    assert test_mse < 0.01  # predicting the mean gives about 0.167


@pytest.mark.parametrize("cell", ["layer_norm_gru", "layer_norm_lstm"])
def test_layer_norm_cells_solve_the_adding_problem_at_length_30_within_800_steps(cell, capsys):
    adding_problem = load_example()
    test_mse = adding_problem.main(
        ["--cell", cell, "--length", "30", "--steps", "800", "--batch", "32", "--hidden", "16",
         "--lr", "0.01", "--seed", "0", "--validate-every", "50", "--target", "0.005"]
    )  # fmt: skip
    steps = int(capsys.readouterr().out.splitlines()[-2].removeprefix("steps: "))
    assert steps < 800  # stopped by the target, not by the step budget
    assert test_mse < 0.01  # predicting the mean gives about 0.167
