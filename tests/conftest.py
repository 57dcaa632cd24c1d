"""Shared helpers: the optional torch oracle, espeak-ng for the speech tests and a central
finite-difference gradient check."""

import os
import shutil

import numpy as np
import pytest

TORCH_MISSING = "PyTorch parity tests need torch==2.13.0: pip install -e '.[test]'"


@pytest.fixture(scope="session")
def torch():
    """The torch module, or a skip with the install command when it is missing."""
    return pytest.importorskip("torch", reason=TORCH_MISSING)


@pytest.fixture(scope="session")
def espeak():
    """The path of espeak-ng, which speaks the speech tests' digits; a skip with the install
    command without it, but a failure in CI (CI=true), whose .ci/run installs it."""
    path = shutil.which("espeak-ng")
    if path is None:
        missing = "the speech tests need espeak-ng: sudo apt-get install espeak-ng"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing} (.ci/run installs it)")
        pytest.skip(missing)
    return path


def numeric_gradient(loss, array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``loss()`` with respect to ``array``, nudged in place."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        original = array[index]
        array[index] = original + eps
        plus = loss()
        array[index] = original - eps
        minus = loss()
        array[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """max|analytic - numeric| / max(max|analytic|, max|numeric|); 0 when both are zero."""
    scale = max(np.abs(analytic).max(), np.abs(numeric).max())
    difference = np.abs(analytic - numeric).max()
    return 0.0 if scale == 0.0 else float(difference / scale)


def assert_gradients_match(loss, checks: dict, tolerance: float = 1e-6, eps: float = 1e-6) -> None:
    """Every ``name: (array, analytic_gradient)`` in ``checks`` agrees with finite differences
    (central, step ``eps``)."""
    errors = {}
    for name, (array, analytic) in checks.items():
        assert analytic.shape == array.shape, f"{name}: gradient shape {analytic.shape}"
        errors[name] = relative_error(analytic, numeric_gradient(loss, array, eps))
    too_large = {name: error for name, error in errors.items() if error > tolerance}
    assert not too_large, f"relative errors above {tolerance}: {too_large}"


@pytest.fixture
def gradient_check():
    """``gradient_check(loss, {name: (array, analytic)})``: see ``assert_gradients_match``."""
    return assert_gradients_match
