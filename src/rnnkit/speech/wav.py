"""WAV files and resampling: 16-bit PCM in and out, samples as float32 in [-1, 1].

Only 16-bit PCM is read (what ``espeak-ng``, ``sox -b 16`` and most recorders write); anything
else is refused with the command that converts it. Stereo and other multi-channel files are
averaged to mono. ``resample`` is a band-limited (Kaiser-windowed sinc) rate change.
"""

from __future__ import annotations

import functools
import io
import math
import wave

import numpy as np

from rnnkit.errors import UserError
from rnnkit.io.files import atomic_write_bytes, regular_file

FULL_SCALE = 32768.0  # int16 sample value of 1.0: int16 samples read as value / 32768
MIN_RATE, MAX_RATE = 4000, 192000  # sampling rates (Hz) that resample accepts
CONVERT = "convert it with: sox in.wav -b 16 -e signed-integer out.wav"

ZERO_CROSSINGS = 16  # half-width of the resampling kernel, in zero crossings of its sinc
KAISER_BETA = 8.6  # Kaiser window shape: about 80 dB of stop-band attenuation
PASSBAND = 0.95  # the low-pass cutoff as a fraction of the lower of the two Nyquist frequencies
BLOCK = 16384  # output samples computed at once (bounds the (outputs, taps) gather)


def read_wav(path) -> tuple[np.ndarray, int]:
    """The samples and sampling rate of the 16-bit PCM WAV file at ``path``.

    Returns:
        samples: (N,) float32 in [-1, 1), channels averaged to mono; rate: samples per second.
    Raises:
        UserError: not a WAV file, not 16-bit PCM, or no samples (the message names the fix).
    """
    file = regular_file(path, "the WAV file", "a 16-bit PCM WAV file")
    return _decode(file.read_bytes(), f"the WAV file {path}")


def read_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """``read_wav`` for the bytes of a WAV file (e.g. the output of ``espeak-ng --stdout``)."""
    return _decode(bytes(data), "the WAV data")


def _decode(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """Samples (N,) float32 and rate of the WAV file ``data``; ``name`` says what it is."""
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            channels = reader.getnchannels()
            width = reader.getsampwidth()
            rate = reader.getframerate()
            # Streamed WAV headers (espeak-ng --stdout) give a huge frame count: read what is there.
            frames = reader.readframes(reader.getnframes())
    except EOFError:
        raise UserError(f"{name} is empty or cut short; give a 16-bit PCM WAV file") from None
    except wave.Error as error:
        raise UserError(f"{name} is not a 16-bit PCM WAV file ({error}); {CONVERT}") from None
    if width != 2:
        raise UserError(f"{name} has {8 * width}-bit samples, but only 16-bit is read; {CONVERT}")
    whole = len(frames) // (2 * channels) * (2 * channels)  # drop a cut-off last frame
    if whole == 0:
        raise UserError(f"{name} has no samples; give a WAV file with sound in it")
    pcm = np.frombuffer(frames[:whole], dtype="<i2").reshape(-1, channels)  # (N, channels)
    samples = pcm.astype(np.float32).mean(axis=1) / np.float32(FULL_SCALE)
    return samples.astype(np.float32), rate


def write_wav(path, samples, rate: int) -> None:
    """Write ``samples`` ((N,) floats in [-1, 1]; louder ones are clipped) to ``path`` as a mono
    16-bit PCM WAV file at ``rate`` samples per second, atomically (a reader never sees half a
    file)."""
    samples = _signal(samples, "samples")
    rate = _rate(rate, "rate")
    pcm = np.clip(np.round(samples * FULL_SCALE), -FULL_SCALE, FULL_SCALE - 1).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm.tobytes())
    atomic_write_bytes(path, buffer.getvalue())


def resample(samples, from_rate: int, to_rate: int) -> np.ndarray:
    """``samples`` taken at ``from_rate`` Hz, resampled to ``to_rate`` Hz.

    Each output sample is the input convolved with a Kaiser-windowed sinc low-pass filter (cutoff
    0.95 of the lower Nyquist frequency, 16 zero crossings each side) at its own time; outside the
    input the signal is taken as zero. Output sample m sits at input time m * from / to. (A
    gather and an einsum, not a matrix product: OpenBLAS's threads made that up to 20x slower
    whenever the other cores were busy, e.g. with the other synthesis threads.)

    Args:
        samples: (N,) real samples.
        from_rate, to_rate: integer rates in Hz, from 4000 to 192000.
    Returns:
        (round(N * to_rate / from_rate),) float32.
    """
    samples = _signal(samples, "samples")
    from_rate = _rate(from_rate, "from_rate")
    to_rate = _rate(to_rate, "to_rate")
    if from_rate == to_rate:
        return samples.copy()
    output_length = round(len(samples) * to_rate / from_rate)
    offsets, weights = _kernel(from_rate, to_rate)  # (taps,), (phases, taps)
    phases, taps = weights.shape
    step = from_rate * phases // to_rate  # output m sits at input time m * step / phases
    # Outputs come in cycles of ``phases``: output c * phases + p reads the inputs
    # c * step + starts[p] + offsets, the same pattern shifted by step each cycle.
    starts = np.arange(phases) * step // phases  # (phases,)
    cycles = max(-(-output_length // phases), 1)  # ceil, at least 1: padded holds a window
    before = -offsets[0]  # zeros ahead of the input: its window c * step + starts[p] is in range
    after = max((cycles - 1) * step + starts[-1] + offsets[-1] + 1 - len(samples), 0)
    padded = np.concatenate([np.zeros(before, np.float32), samples, np.zeros(after, np.float32)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, taps)  # (inputs, taps), no copy
    resampled = np.empty((cycles, phases), dtype=np.float32)
    per_block = max(BLOCK // phases, 1)  # cycles at once: bounds the (block, phases, taps) gather
    for first in range(0, cycles, per_block):
        cycle = np.arange(first, min(first + per_block, cycles))[:, None]  # (block, 1)
        gathered = windows[cycle * step + starts[None, :]]  # (block, phases, taps)
        resampled[first : first + len(cycle)] = np.einsum("cpt,pt->cp", gathered, weights)
    return resampled.reshape(-1)[:output_length]  # (cycles, phases) -> (output_length,)


@functools.lru_cache(maxsize=8)
def _kernel(from_rate: int, to_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The resampling filter from ``from_rate`` to ``to_rate``, one row per output phase.

    Output m lies at input time t = m * step / phases (step = from / g, phases = to / g, g their
    gcd), a fraction (m * step mod phases) / phases past input sample floor(t). Row p holds the
    weights of the input samples floor(t) + offsets for outputs with m mod phases = p.

    Returns:
        offsets: (taps,) consecutive ints; weights: (phases, taps) float32.
    """
    common = math.gcd(from_rate, to_rate)
    step, phases = from_rate // common, to_rate // common
    cutoff = PASSBAND * min(from_rate, to_rate) / from_rate  # of the input Nyquist frequency
    half_width = ZERO_CROSSINGS / cutoff  # in input samples
    reach = math.ceil(half_width)
    offsets = np.arange(-reach + 1, reach + 1)  # (taps,)
    fractions = (np.arange(phases) * step % phases) / phases  # (phases,) in [0, 1)
    distances = fractions[:, None] - offsets[None, :]  # (phases, taps) t minus the input's time
    inside = np.abs(distances) < half_width
    shape = np.sqrt(np.clip(1.0 - (distances / half_width) ** 2, 0.0, None))
    window = np.where(inside, np.i0(KAISER_BETA * shape) / np.i0(KAISER_BETA), 0.0)
    weights = cutoff * np.sinc(cutoff * distances) * window  # (phases, taps)
    return offsets, weights.astype(np.float32)


def _signal(samples, name: str) -> np.ndarray:
    """``samples`` as a (N,) float32 array of finite values (UserError otherwise)."""
    array = np.asarray(samples)
    if array.ndim != 1 or array.dtype.kind not in "iuf":
        raise UserError(
            f"{name} must be a 1-D array of real samples, got shape {array.shape} of "
            f"{array.dtype}; give one channel, e.g. samples.mean(axis=1)"
        )
    if not np.all(np.isfinite(array)):
        raise UserError(f"{name} hold NaN or infinite values; give finite samples")
    return array.astype(np.float32)


def _rate(rate, name: str) -> int:
    """``rate`` as an int in [MIN_RATE, MAX_RATE] Hz (UserError otherwise)."""
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer):
        raise UserError(f"{name} must be an integer number of samples per second, got {rate!r}")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise UserError(
            f"{name} {rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz; give a real audio "
            "sampling rate such as 16000"
        )
    return int(rate)
