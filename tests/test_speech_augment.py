"""Vocal tract length perturbation: a warp of the frequency axis of log-mel frames."""

import numpy as np
import pytest

from rnnkit.errors import UserError
from rnnkit.speech.augment import random_factors, warp_frequencies
from rnnkit.speech.features import log_mel

RATE = 16000


def tone(hz: float, seconds: float = 0.2) -> np.ndarray:
    return np.sin(2 * np.pi * hz * np.arange(int(RATE * seconds)) / RATE).astype(np.float32)


def loudest_band(frames) -> int:
    return int(np.argmax(frames.mean(axis=0)))


@pytest.mark.parametrize(("hz", "factor"), [(500, 1.2), (1000, 0.8), (2000, 1.15), (700, 1 / 1.3)])
def test_a_warped_tone_lands_where_the_scaled_tone_does(hz, factor):
    warped = warp_frequencies(log_mel(tone(hz), RATE), factor, RATE)
    scaled = log_mel(tone(hz * factor), RATE)
    assert abs(loudest_band(warped) - loudest_band(scaled)) <= 1


def test_factor_one_changes_nothing_and_shapes_hold():
    frames = np.random.default_rng(0).standard_normal((9, 40)).astype(np.float32)
    np.testing.assert_allclose(warp_frequencies(frames, 1.0, RATE), frames, atol=1e-6)
    assert warp_frequencies(frames, 1.3, RATE).shape == (9, 40)
    with pytest.raises(UserError, match="above 0"):
        warp_frequencies(frames, 0.0, RATE)


def test_random_factors_stay_in_range_and_are_symmetric_in_log():
    factors = random_factors(20_000, 0.25, np.random.default_rng(1))
    assert factors.min() >= 1 / 1.25 and factors.max() <= 1.25
    assert abs(np.log(factors).mean()) < 0.01
