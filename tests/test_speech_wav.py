"""WAV reading and writing, and band-limited resampling (rnnkit.speech.wav)."""

from __future__ import annotations

import io
import struct
import wave

import numpy as np
import pytest

from rnnkit.errors import UserError
from rnnkit.speech.wav import read_wav, read_wav_bytes, resample, write_wav


def _wav_bytes(pcm: bytes, *, channels=1, width=2, rate=16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(pcm)
    return buffer.getvalue()


def _tone(frequency, rate, seconds=1.0, amplitude=0.5, phase=0.3):
    times = np.arange(round(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * frequency * times + phase)


def _fit_amplitude(samples, frequency, rate):
    """Least-squares amplitude of a sinusoid of ``frequency`` in the middle half of ``samples``."""
    middle = slice(len(samples) // 4, 3 * len(samples) // 4)
    times = np.arange(len(samples))[middle] / rate
    basis = np.stack([np.sin(2 * np.pi * frequency * times), np.cos(2 * np.pi * frequency * times)])
    coefficients, *_ = np.linalg.lstsq(basis.T, samples[middle], rcond=None)
    return float(np.hypot(*coefficients))


def test_write_then_read_gives_the_quantised_samples(tmp_path):
    samples = np.random.default_rng(0).uniform(-1, 1, 1000).astype(np.float32)
    path = tmp_path / "a.wav"
    write_wav(path, samples, 22050)
    read, rate = read_wav(path)
    assert rate == 22050 and read.dtype == np.float32 and read.shape == (1000,)
    np.testing.assert_allclose(read, samples, atol=1 / 32768)
    assert [entry.name for entry in tmp_path.iterdir()] == ["a.wav"]  # no temporary file left
    write_wav(path, read, 22050)  # overwrites; samples read back are exact
    np.testing.assert_array_equal(read_wav(path)[0], read)


def test_write_clips_loud_samples(tmp_path):
    write_wav(tmp_path / "loud.wav", np.array([2.0, -2.0, 0.5]), 8000)
    np.testing.assert_allclose(read_wav(tmp_path / "loud.wav")[0], [32767 / 32768, -1.0, 0.5])


def test_stereo_is_averaged_to_mono():
    left, right = [1000, -2000, 300], [3000, 2000, -300]
    pcm = np.array([left, right], dtype="<i2").T.tobytes()  # interleaved L R L R ...
    samples, rate = read_wav_bytes(_wav_bytes(pcm, channels=2, rate=44100))
    assert rate == 44100
    np.testing.assert_allclose(samples, np.array([2000, 0, 0]) / 32768)


def test_a_streamed_header_with_a_huge_length_reads_what_is_there():
    data = bytearray(_wav_bytes(np.array([1, 2, 3], dtype="<i2").tobytes()))
    struct.pack_into("<I", data, 4, 0x7FFFFFFF)  # RIFF size, as espeak-ng --stdout writes it
    struct.pack_into("<I", data, 40, 0x7FFFFFFF)  # data chunk size
    np.testing.assert_allclose(read_wav_bytes(bytes(data))[0], np.array([1, 2, 3]) / 32768)


@pytest.mark.parametrize("width", [1, 3, 4])
def test_other_sample_widths_are_refused_with_the_fix(width):
    with pytest.raises(UserError, match=rf"{8 * width}-bit samples.*sox in.wav -b 16"):
        read_wav_bytes(_wav_bytes(bytes(4 * width), width=width))


def test_compressed_or_float_wav_is_refused_with_the_fix():
    data = bytearray(_wav_bytes(bytes(8)))
    struct.pack_into("<H", data, 20, 3)  # format tag 3: IEEE float
    with pytest.raises(UserError, match="not a 16-bit PCM WAV file.*sox"):
        read_wav_bytes(bytes(data))


def test_not_a_wav_empty_and_silent_files_are_refused(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("hello, this is not audio at all")
    with pytest.raises(UserError, match=r"notes.wav is not a 16-bit PCM WAV file.*sox"):
        read_wav(text)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        read_wav(empty)
    with pytest.raises(UserError, match="has no samples"):
        read_wav_bytes(_wav_bytes(b""))
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_wav(tmp_path / "missing.wav")


@pytest.mark.parametrize(
    ("from_rate", "to_rate", "frequency"),
    [(22050, 16000, 1000), (22050, 16000, 6000), (16000, 22050, 3000), (8000, 16000, 3000),
     (44100, 16000, 440), (48000, 8000, 2500), (22254, 16000, 2000), (16001, 16000, 5000)],
)  # fmt: skip
def test_a_tone_below_both_nyquists_keeps_its_frequency_and_amplitude(
    from_rate, to_rate, frequency
):
    resampled = resample(_tone(frequency, from_rate), from_rate, to_rate)
    assert resampled.shape == (to_rate,) and resampled.dtype == np.float32
    assert _fit_amplitude(resampled, frequency, to_rate) == pytest.approx(0.5, rel=2e-3)
    reference = _tone(frequency, to_rate)
    middle = slice(to_rate // 4, 3 * to_rate // 4)
    np.testing.assert_allclose(resampled[middle], reference[middle], atol=1e-3)


def test_a_tone_above_the_new_nyquist_is_removed():
    resampled = resample(_tone(6000, 44100), 44100, 8000)
    assert np.sqrt(np.mean(resampled[2000:6000] ** 2)) < 1e-3


@pytest.mark.parametrize("length", [0, 1, 2, 7, 441, 1000, 12345])
def test_the_length_is_rounded_to_the_new_rate(length):
    samples = np.ones(length)
    for from_rate, to_rate in [(22050, 16000), (16000, 22050), (22254, 16000), (16000, 16000)]:
        assert len(resample(samples, from_rate, to_rate)) == round(length * to_rate / from_rate)


@pytest.mark.parametrize(
    ("from_rate", "to_rate"), [(22050, 16000), (8000, 11025), (48000, 16000), (22254, 16000)]
)
def test_each_output_is_the_windowed_sinc_sum_at_its_time(from_rate, to_rate):
    samples = np.random.default_rng(1).standard_normal(3000)
    resampled = resample(samples, from_rate, to_rate)
    cutoff = 0.95 * min(from_rate, to_rate) / from_rate  # of the input Nyquist frequency
    half_width = 16 / cutoff  # input samples
    for output in [0, 1, 7, len(resampled) // 2, len(resampled) - 1]:
        distances = output * from_rate / to_rate - np.arange(3000)  # (3000,)
        inside = np.abs(distances) < half_width
        shape = np.sqrt(1 - (distances[inside] / half_width) ** 2)
        window = np.i0(8.6 * shape) / np.i0(8.6)
        kernel = cutoff * np.sinc(cutoff * distances[inside]) * window
        assert resampled[output] == pytest.approx(np.sum(samples[inside] * kernel), abs=2e-5)


@pytest.mark.parametrize(
    ("samples", "from_rate", "to_rate", "message"),
    [
        (np.ones(10), 3000, 16000, "from_rate 3000 Hz is outside 4000..192000"),
        (np.ones(10), 16000, 400000, "to_rate 400000 Hz is outside"),
        (np.ones(10), 16000.0, 8000, "from_rate must be an integer"),
        (np.ones((10, 2)), 16000, 8000, "1-D array of real samples"),
        (np.array([0.0, np.nan]), 16000, 8000, "NaN or infinite"),
    ],
)
def test_bad_resampling_arguments_are_refused(samples, from_rate, to_rate, message):
    with pytest.raises(UserError, match=message):
        resample(samples, from_rate, to_rate)
