"""Training-time changes to log-mel frames, so that a recogniser hears voices unlike the ones it
was trained on: a warp of the frequency axis, as a shorter or longer vocal tract would make
(vocal tract length perturbation, Jaitly & Hinton 2013)."""

from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError
from rnnkit.speech.features import hz_to_mel, mel_band_edges

LOW_HZ = 20.0  # the lowest band edge of the features (log_mel's default)


def warp_frequencies(frames, factor: float, rate: int) -> np.ndarray:
    """The frames a voice with every frequency ``factor`` times higher would give.

    Args:
        frames: (T, num_mels) log-mel frames of audio at ``rate`` Hz (bands from 20 Hz to
            rate / 2, as ``log_mel`` makes them).
        factor: > 0; above 1 moves energy to higher bands.
    Returns:
        (T, num_mels) float32: band j, centred at f_j Hz, reads the input at f_j / factor,
        interpolated linearly in mel between the two nearest band centres (and held at the
        first or last band beyond them).
    """
    if not factor > 0:
        raise UserError(f"the warp factor must be above 0, got {factor}")
    frames = np.asarray(frames, dtype=np.float32)
    num_mels = frames.shape[1]
    centres_hz = mel_band_edges(num_mels, LOW_HZ, rate / 2)[1:-1]  # (num_mels,)
    centres_mel = hz_to_mel(centres_hz)
    position = np.interp(hz_to_mel(centres_hz / factor), centres_mel, np.arange(num_mels))
    lower = np.minimum(np.floor(position).astype(np.int64), num_mels - 2)  # (num_mels,)
    weight = (position - lower).astype(np.float32)  # (num_mels,) share of the upper band
    return frames[:, lower] * (1 - weight) + frames[:, lower + 1] * weight


def random_factors(count: int, most: float, rng: np.random.Generator) -> np.ndarray:
    """(count,) warp factors drawn log-uniformly from [1 / (1 + most), 1 + most]."""
    return np.exp(rng.uniform(-np.log1p(most), np.log1p(most), size=count))
