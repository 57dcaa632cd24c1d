"""Log-mel features, computed from their definition.

A signal is cut into frames of ``window_ms`` every ``hop_ms`` (the last one zero-padded), each
frame is multiplied by a periodic Hann window, its power spectrum |rfft|^2 (``fft_size`` points,
the next power of two at or above the window length) is summed through triangular filters
equally spaced on the HTK mel scale (mel = 2595 log10(1 + f / 700)), and the log of each sum plus
a small floor is one feature: (frames, num_mels).

Pre-emphasis (x[n] - a x[n-1]) is off by default: it only tilts the spectrum by a fixed amount per
band, which ``normalise`` (per-band mean removal) takes away again. Pass ``preemphasis=0.97`` for
the usual speech-recognition setting.
"""

from __future__ import annotations

import math

import numpy as np

from rnnkit.errors import UserError

ENERGY_FLOOR = 1e-10  # added to each band energy before the log: silence gives log(1e-10) = -23
NORMALISE_FLOOR = 1e-5  # smallest standard deviation normalise divides by


def hz_to_mel(hz):
    """Frequency (Hz, scalar or array) on the HTK mel scale: 2595 log10(1 + hz / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    """The inverse of ``hz_to_mel``: 700 (10^(mel / 2595) - 1) Hz."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_band_edges(num_mels: int, low_hz: float, high_hz: float) -> np.ndarray:
    """(num_mels + 2,) frequencies in Hz, equally spaced in mel from ``low_hz`` to ``high_hz``.

    Band j rises from edges[j] to 1 at its centre edges[j + 1] and falls to 0 at edges[j + 2].
    """
    mels = np.linspace(hz_to_mel(low_hz), hz_to_mel(high_hz), num_mels + 2)
    return mel_to_hz(mels)


def triangular_filters(frequencies_hz, edges_hz) -> np.ndarray:
    """The weights of triangular bands at ``frequencies_hz``.

    Args:
        frequencies_hz: (F,) frequencies at which to evaluate the bands.
        edges_hz: (B + 2,) increasing band edges (``mel_band_edges``).
    Returns:
        (B, F): band j is 0 up to edges[j], rises linearly to 1 at edges[j + 1], falls linearly
        to 0 at edges[j + 2] and stays 0 above.
    """
    frequencies = np.asarray(frequencies_hz, dtype=np.float64)[None, :]  # (1, F)
    edges = np.asarray(edges_hz, dtype=np.float64)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (B, 1) each
    rising = (frequencies - lower) / (centre - lower)  # (B, F)
    falling = (upper - frequencies) / (upper - centre)  # (B, F)
    return np.clip(np.minimum(rising, falling), 0.0, None)


def mel_filter_bank(
    num_mels: int, fft_size: int, rate: int, low_hz: float, high_hz: float
) -> np.ndarray:
    """(num_mels, fft_size // 2 + 1) triangular mel filters over the bins of an rfft of
    ``fft_size`` points at ``rate`` Hz (bin k is k * rate / fft_size Hz); each triangle is 1 at its
    centre (``triangular_filters`` on ``mel_band_edges``)."""
    _check_bands(num_mels, fft_size, rate, low_hz, high_hz)
    bins_hz = np.arange(fft_size // 2 + 1) * rate / fft_size  # (fft_size // 2 + 1,)
    bank = triangular_filters(bins_hz, mel_band_edges(num_mels, low_hz, high_hz))
    empty = np.flatnonzero(bank.max(axis=1) == 0.0)
    if empty.size:
        raise UserError(
            f"mel band {empty[0]} of {num_mels} covers no FFT bin ({rate / fft_size:.1f} Hz "
            "apart); use fewer mel bands, a higher low_hz or a longer window"
        )
    return bank


def frame_signal(samples, frame_length: int, hop_length: int) -> np.ndarray:
    """Overlapping frames of ``samples``: frame i holds samples [i * hop, i * hop + frame_length).

    There are just enough frames to cover every sample: 1 + ceil(max(N - frame_length, 0) / hop)
    for N > 0 samples, none for N = 0; the last frame is padded with zeros.

    Returns:
        (frames, frame_length) array of the samples' dtype.
    """
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise UserError(f"samples must be 1-D (one channel), got shape {samples.shape}")
    if frame_length < 1 or hop_length < 1:
        raise UserError(
            f"frame_length {frame_length} and hop_length {hop_length} must be at least 1 sample"
        )
    count = (
        0 if len(samples) == 0 else 1 + math.ceil(max(len(samples) - frame_length, 0) / hop_length)
    )
    padded_length = (count - 1) * hop_length + frame_length if count else 0
    padded = np.zeros(padded_length, dtype=samples.dtype)
    padded[: len(samples)] = samples
    starts = np.arange(count)[:, None] * hop_length  # (frames, 1)
    return padded[starts + np.arange(frame_length)[None, :]]  # (frames, frame_length)


def log_mel(
    samples,
    rate: int,
    *,
    num_mels: int = 40,
    window_ms: float = 25.0,
    hop_ms: float = 10.0,
    fft_size: int | None = None,
    low_hz: float = 20.0,
    high_hz: float | None = None,
    preemphasis: float = 0.0,
) -> np.ndarray:
    """Log mel filter-bank energies of a signal.

    Args:
        samples: (N,) real samples at ``rate`` Hz, N >= 1.
        rate: sampling rate in Hz.
        num_mels: number of mel bands.
        window_ms, hop_ms: frame length and frame step in milliseconds (rounded to samples).
        fft_size: FFT points; default the next power of two at or above the window length.
        low_hz, high_hz: the lowest and highest band edges; high_hz defaults to rate / 2.
        preemphasis: a in x[n] - a x[n-1] before framing (0 = none; 0.97 is usual).
    Returns:
        (frames, num_mels) float32: log(sum_k H[m, k] |X_t[k]|^2 + 1e-10), frames as
        ``frame_signal`` counts them (100 per second at hop_ms=10).
    """
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 1 or samples.size == 0:
        raise UserError(f"log_mel needs a 1-D signal of at least one sample, got {samples.shape}")
    window_length = round(rate * window_ms / 1000.0)
    hop_length = round(rate * hop_ms / 1000.0)
    if window_length < 2 or hop_length < 1:
        raise UserError(
            f"window_ms {window_ms} and hop_ms {hop_ms} at {rate} Hz give windows of "
            f"{window_length} and hops of {hop_length} samples; give longer ones"
        )
    fft_size = 1 << (window_length - 1).bit_length() if fft_size is None else fft_size
    if fft_size < window_length:
        raise UserError(
            f"fft_size {fft_size} is shorter than the window ({window_length} samples); "
            "give a larger fft_size or leave it out"
        )
    high_hz = rate / 2.0 if high_hz is None else high_hz
    bank = mel_filter_bank(num_mels, fft_size, rate, low_hz, high_hz)
    if not 0.0 <= preemphasis < 1.0:
        raise UserError(f"preemphasis must lie in [0, 1), got {preemphasis}; 0.97 is usual")
    emphasised = np.concatenate([samples[:1], samples[1:] - preemphasis * samples[:-1]])
    frames = frame_signal(emphasised, window_length, hop_length)  # (frames, window_length)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(window_length) / window_length)
    spectrum = np.fft.rfft(frames * window, n=fft_size, axis=1)  # (frames, fft_size // 2 + 1)
    # float32 from here: the same features, and NumPy's float64 product is 10x slower at this size.
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)  # (frames, fft_size // 2 + 1)
    energies = power @ bank.T.astype(np.float32)  # (frames, num_mels)
    return np.log(energies + np.float32(ENERGY_FLOOR))


def normalise(features) -> np.ndarray:
    """Per-utterance mean and variance normalisation over time.

    Each band (column) of ``features`` (frames, bands) has its mean over the frames subtracted and
    is divided by its standard deviation (at least 1e-5). In the log domain a fixed gain or a fixed
    channel (microphone, voice timbre) adds a constant per band, so the result does not depend on
    them. A band that never changes (e.g. silence) becomes 0.

    Returns:
        (frames, bands) float32, each band with mean 0 and standard deviation 1 (or 0).
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] == 0:
        raise UserError(
            f"features must be (frames, bands) with at least one frame, got {features.shape}"
        )
    centred = features - features.mean(axis=0)
    spread = np.maximum(centred.std(axis=0), NORMALISE_FLOOR)
    return (centred / spread).astype(np.float32)


def _check_bands(num_mels, fft_size, rate, low_hz, high_hz) -> None:
    """UserError unless the mel band arguments make sense together."""
    if int(num_mels) != num_mels or num_mels < 1:
        raise UserError(f"num_mels must be a positive integer, got {num_mels!r}")
    if int(fft_size) != fft_size or fft_size < 2:
        raise UserError(f"fft_size must be an integer of at least 2, got {fft_size!r}")
    if rate <= 0:
        raise UserError(f"rate must be a positive number of samples per second, got {rate!r}")
    if not 0.0 <= low_hz < high_hz <= rate / 2.0:
        raise UserError(
            f"the mel bands need 0 <= low_hz < high_hz <= rate / 2 = {rate / 2.0:g} Hz, got "
            f"low_hz {low_hz} and high_hz {high_hz}; lower high_hz or raise the rate"
        )
