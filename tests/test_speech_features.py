"""Log-mel features checked against their definition (rnnkit.speech.features)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnkit.errors import UserError
from rnnkit.speech.features import (
    frame_signal,
    hz_to_mel,
    log_mel,
    mel_band_edges,
    mel_filter_bank,
    mel_to_hz,
    normalise,
    triangular_filters,
)

RATE = 16000


def test_the_htk_mel_scale():
    assert hz_to_mel(700.0) == pytest.approx(2595 * math.log10(2))
    assert hz_to_mel(0.0) == 0.0
    frequencies = np.array([20.0, 440.0, 1000.0, 8000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(frequencies)), frequencies, rtol=1e-12)


def test_triangles_peak_at_one_at_their_centres_and_vanish_beyond_their_neighbours():
    edges = mel_band_edges(10, 20.0, 8000.0)  # (12,)
    np.testing.assert_allclose(triangular_filters(edges[1:-1], edges), np.eye(10), atol=1e-12)
    frequencies = np.linspace(0, 8000, 20001)
    bands = triangular_filters(frequencies, edges)  # (10, F)
    assert bands.max() <= 1.0
    for band in range(10):
        outside = (frequencies <= edges[band]) | (frequencies >= edges[band + 2])
        assert np.all(bands[band, outside] == 0.0)
        assert np.all(bands[band, ~outside] > 0.0)
    inner = (frequencies >= edges[1]) & (frequencies <= edges[-2])
    np.testing.assert_allclose(bands[:, inner].sum(axis=0), 1.0)  # neighbours add up to 1


def test_the_filter_bank_samples_the_triangles_at_the_fft_bins():
    bank = mel_filter_bank(40, 512, RATE, 20.0, 8000.0)
    assert bank.shape == (40, 257)
    bins_hz = np.arange(257) * RATE / 512
    expected = triangular_filters(bins_hz, mel_band_edges(40, 20.0, 8000.0))
    np.testing.assert_array_equal(bank, expected)
    assert np.all(bank.max(axis=1) > 0.3)  # every band sees at least one bin


@pytest.mark.parametrize("band", [3, 10, 20, 30, 37])
@pytest.mark.parametrize("towards_next", [0.0, 0.3])
def test_a_tone_puts_most_energy_in_the_band_with_the_nearest_centre(band, towards_next):
    centres = mel_band_edges(40, 20.0, 8000.0)[1:-1]
    frequency = centres[band] + towards_next * (centres[band + 1] - centres[band])
    times = np.arange(RATE) / RATE
    features = log_mel(0.5 * np.sin(2 * np.pi * frequency * times), RATE)
    nearest = np.argmin(np.abs(centres - frequency))
    assert nearest == band
    assert np.all(np.argmax(features, axis=1) == nearest)


def test_filterbank_energies_equal_a_direct_dft():
    window_length, fft_size = 400, 512  # 25 ms at 16 kHz
    frame = np.random.default_rng(0).standard_normal(window_length)
    features = log_mel(frame, RATE)  # one frame exactly
    n = np.arange(window_length)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / window_length)
    power = np.array(
        [
            abs(np.sum(frame * hann * np.exp(-2j * np.pi * k * n / fft_size))) ** 2
            for k in range(fft_size // 2 + 1)
        ]
    )
    energies = mel_filter_bank(40, fft_size, RATE, 20.0, RATE / 2) @ power
    assert features.shape == (1, 40) and features.dtype == np.float32
    np.testing.assert_allclose(features[0], np.log(energies + 1e-10), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("length", "frames"), [(0, 0), (1, 1), (400, 1), (401, 2), (560, 2), (561, 3), (16000, 99)]
)
def test_the_number_of_frames(length, frames):
    assert frame_signal(np.ones(length), 400, 160).shape == (frames, 400)
    if length:
        assert log_mel(np.ones(length), RATE).shape == (frames, 40)


def test_frames_are_hops_apart_and_the_last_is_zero_padded():
    framed = frame_signal(np.arange(1.0, 11.0), 4, 3)  # samples 1..10
    np.testing.assert_array_equal(framed, [[1, 2, 3, 4], [4, 5, 6, 7], [7, 8, 9, 10]])
    framed = frame_signal(np.arange(1.0, 9.0), 4, 3)  # samples 1..8
    np.testing.assert_array_equal(framed, [[1, 2, 3, 4], [4, 5, 6, 7], [7, 8, 0, 0]])


def test_silence_gives_finite_values():
    features = log_mel(np.zeros(8000), RATE)
    assert np.all(np.isfinite(features))
    np.testing.assert_allclose(features, np.log(1e-10), rtol=1e-6)
    np.testing.assert_array_equal(normalise(features), 0.0)


def test_preemphasis_filters_the_signal_first():
    signal = np.random.default_rng(2).standard_normal(4000)
    emphasised = np.concatenate([signal[:1], signal[1:] - 0.97 * signal[:-1]])
    np.testing.assert_allclose(
        log_mel(signal, RATE, preemphasis=0.97), log_mel(emphasised, RATE), rtol=1e-5
    )


def test_normalise_removes_gain_and_gives_zero_mean_unit_variance():
    signal = np.random.default_rng(3).standard_normal(8000) * np.linspace(0.1, 1, 8000)
    quiet, loud = normalise(log_mel(signal, RATE)), normalise(log_mel(7.0 * signal, RATE))
    assert quiet.dtype == np.float32 and quiet.shape == (49, 40)
    np.testing.assert_allclose(quiet, loud, atol=1e-4)
    np.testing.assert_allclose(quiet.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(quiet.std(axis=0), 1.0, rtol=1e-4)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"num_mels": 0}, "num_mels must be a positive integer"),
        ({"high_hz": 9000.0}, "high_hz <= rate / 2 = 8000"),
        ({"low_hz": 4000.0, "high_hz": 3000.0}, "low_hz < high_hz"),
        ({"fft_size": 256}, "fft_size 256 is shorter than the window"),
        ({"num_mels": 200}, "covers no FFT bin"),
        ({"window_ms": 0.05}, "give longer ones"),
        ({"preemphasis": 1.0}, "preemphasis must lie in"),
    ],
)
def test_bad_arguments_are_refused(arguments, message):
    with pytest.raises(UserError, match=message):
        log_mel(np.ones(1000), RATE, **arguments)


def test_bad_signals_are_refused():
    with pytest.raises(UserError, match="at least one sample"):
        log_mel(np.ones(0), RATE)
    with pytest.raises(UserError, match="1-D signal"):
        log_mel(np.ones((100, 2)), RATE)
    with pytest.raises(UserError, match=r"\(frames, bands\)"):
        normalise(np.ones(5))
