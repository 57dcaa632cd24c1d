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
BLOCK = 16384  # output samples computed at once (bounds the (block, taps) gather)
MATRIX_ENTRIES = 1 << 22  # the largest cycle matrix (16 MB): 44100 -> 16000 needs 80 000


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
    input the signal is taken as zero. Output sample m sits at input time m * from / to.

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
    common = math.gcd(from_rate, to_rate)
    step, phases = from_rate // common, to_rate // common
    taps = 2 * math.ceil(_half_width(from_rate, to_rate))
    if (step + taps) * phases <= MATRIX_ENTRIES:
        return _resample_by_cycles(samples, from_rate, to_rate, output_length)
    return _resample_each(samples, from_rate, to_rate, output_length)


def _resample_by_cycles(samples, from_rate, to_rate, output_length) -> np.ndarray:
    """``resample`` as one matrix product: for rates whose pattern repeats often.

    Outputs come in cycles of ``phases``; cycle c reads the same span of inputs shifted by
    c * step, so each cycle is a row of input windows times ``_cycle_matrix``.
    """
    offsets, matrix = _cycle_matrix(from_rate, to_rate)  # (span, phases)
    span, phases = matrix.shape
    step = from_rate * phases // to_rate
    cycles = -(-output_length // phases)  # ceil
    before = -offsets[0]  # zeros ahead of the input, so window c starts at c * step
    after = max((cycles - 1) * step + span - before - len(samples), 0)
    padded = np.concatenate([np.zeros(before, np.float32), samples, np.zeros(after, np.float32)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, span)[::step][
        :cycles
    ]  # (cycles, span)
    return (windows @ matrix).reshape(-1)[:output_length]  # (cycles, phases) -> (output_length,)


def _resample_each(samples, from_rate, to_rate, output_length) -> np.ndarray:
    """``resample`` one output at a time (in blocks): for rates whose pattern rarely repeats."""
    offsets, weights = _kernel(from_rate, to_rate)  # (taps,), (phases, taps)
    phases = weights.shape[0]
    step = from_rate * phases // to_rate
    margin = len(offsets) + 1
    padded = np.concatenate([np.zeros(margin), samples, np.zeros(margin)])  # (N + 2 margin,)
    resampled = np.empty(output_length, dtype=np.float32)
    for start in range(0, output_length, BLOCK):
        outputs = np.arange(start, min(start + BLOCK, output_length))  # (block,)
        before = (outputs * step) // phases  # (block,) the input sample at or before each output
        neighbours = margin + before[:, None] + offsets[None, :]  # (block, taps) into padded
        phase_weights = weights[outputs % phases]  # (block, taps)
        resampled[outputs] = np.einsum("bt,bt->b", padded[neighbours], phase_weights)
    return resampled


@functools.lru_cache(maxsize=16)
def _cycle_matrix(from_rate: int, to_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """``_kernel`` laid out for one cycle of outputs: matrix[j, p] weighs input
    c * step + offsets[0] + j for output c * phases + p.

    Returns:
        offsets: (taps,) as ``_kernel``; matrix: (span, phases) float32, span = the inputs one
        cycle reads.
    """
    offsets, weights = _kernel(from_rate, to_rate)  # (taps,), (phases, taps)
    phases, taps = weights.shape
    step = from_rate * phases // to_rate
    starts = np.arange(phases) * step // phases  # (phases,) floor of each phase's input time
    matrix = np.zeros((starts[-1] + taps, phases), dtype=np.float32)
    matrix[starts[:, None] + np.arange(taps)[None, :], np.arange(phases)[:, None]] = weights
    return offsets, matrix


@functools.lru_cache(maxsize=16)
def _kernel(from_rate: int, to_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The resampling filter from ``from_rate`` to ``to_rate``, one row per output phase.

    Output m lies at input time t = m * step / phases (step = from / g, phases = to / g, g their
    gcd), a fraction (m * step mod phases) / phases past input sample floor(t). Row p holds the
    weights of the input samples floor(t) + offsets for outputs with m mod phases = p.

    Returns:
        offsets: (taps,) int; weights: (phases, taps) float64.
    """
    common = math.gcd(from_rate, to_rate)
    step, phases = from_rate // common, to_rate // common
    cutoff = PASSBAND * min(from_rate, to_rate) / from_rate  # of the input Nyquist frequency
    half_width = _half_width(from_rate, to_rate)
    reach = math.ceil(half_width)
    offsets = np.arange(-reach + 1, reach + 1)  # (taps,)
    fractions = (np.arange(phases) * step % phases) / phases  # (phases,) in [0, 1)
    distances = fractions[:, None] - offsets[None, :]  # (phases, taps) t minus the input's time
    inside = np.abs(distances) < half_width
    shape = np.sqrt(np.clip(1.0 - (distances / half_width) ** 2, 0.0, None))
    window = np.where(inside, np.i0(KAISER_BETA * shape) / np.i0(KAISER_BETA), 0.0)
    weights = cutoff * np.sinc(cutoff * distances) * window  # (phases, taps)
    return offsets, weights


def _half_width(from_rate: int, to_rate: int) -> float:
    """Half the length of the resampling kernel, in input samples: ZERO_CROSSINGS / cutoff."""
    return ZERO_CROSSINGS * from_rate / (PASSBAND * min(from_rate, to_rate))


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
