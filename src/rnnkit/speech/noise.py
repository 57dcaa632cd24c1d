"""Noise at a chosen signal-to-noise ratio: white, pink (power ~ 1/f) or brown (power ~ 1/f^2).

The ratio is of mean powers over the whole signal: SNR = 10 log10(mean(signal^2) / mean(noise^2))
dB, and the noise is scaled to give exactly the asked ratio.
"""

from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError

COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # colour -> exponent of its power's 1/f


def coloured_noise(length: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """(length,) float64 noise of ``colour`` with mean power 1 (no DC), from ``rng``.

    Gaussian white noise is shaped in the frequency domain: its amplitude at frequency f is
    multiplied by f^(-exponent / 2), so its power goes as 1 / f^exponent. (It is made a power of
    two long, for a fast FFT, and cut to ``length``.)
    """
    if colour not in COLOURS:
        raise UserError(f"unknown noise colour {colour!r}; give one of {', '.join(COLOURS)}")
    if length < 2:
        raise UserError(f"noise needs at least 2 samples, got {length}")
    fft_size = 1 << (length - 1).bit_length()  # a power of two: fast for any length
    spectrum = np.fft.rfft(rng.standard_normal(fft_size))  # (fft_size // 2 + 1,)
    frequencies = np.arange(1, spectrum.size)  # bin numbers; bin 0 (DC) is dropped
    spectrum[0] = 0.0
    spectrum[1:] *= frequencies ** (-COLOURS[colour] / 2.0)
    noise = np.fft.irfft(spectrum, n=fft_size)[:length]
    return noise / np.sqrt(np.mean(noise**2))


def add_noise(samples, snr_db: float, colour: str, rng: np.random.Generator) -> np.ndarray:
    """``samples`` ((N,) real) plus ``colour`` noise scaled to ``snr_db`` dB below their mean
    power. Returns (N,) float32; a silent signal is returned unchanged."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 1:
        raise UserError(f"samples must be 1-D (one channel), got shape {samples.shape}")
    if not np.isfinite(snr_db):
        raise UserError(f"snr_db must be a finite number of decibels, got {snr_db}")
    signal_power = np.mean(samples**2)
    noise = coloured_noise(len(samples), colour, rng)
    scale = np.sqrt(signal_power / 10.0 ** (snr_db / 10.0))
    return (samples + scale * noise).astype(np.float32)
