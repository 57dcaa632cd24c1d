"""Speech synthesis with the ``espeak-ng`` program, run as a subprocess (nothing is installed or
downloaded; the program must be on PATH).

A voice is an English accent (``ACCENTS``, espeak-ng's own voices, which need no mbrola) plus a
voice variant (``variants()``: m1..m8, f1..f5, croak, whisper, klatt, ... ; about 100), written
``accent+variant``. Measured with espeak-ng 1.51:

- ``en-gb+m3`` silently ignores the variant (every variant gives the plain en-gb voice), while
  ``gmw/en+m3`` (the same accent named by its voice file) applies it; so accents are named by
  their files.
- An unknown variant is silently ignored too, so variants that sound exactly like the plain
  voice or like another variant are left out (``EXCLUDED_VARIANTS``).
- No voice is silent or garbage: over all 8 x 97 accent+variant voices, "three nine one zero"
  had an RMS level of 0.038..0.39 of full scale and lasted 1.1..1.9 s; the loudest variant
  (iven) clips 1% of its samples.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

import numpy as np

from rnnkit.errors import UserError
from rnnkit.speech.wav import read_wav_bytes, resample

PROGRAM = "espeak-ng"
MISSING = (
    "espeak-ng is not installed; install it with: sudo apt-get install espeak-ng "
    "(Debian/Ubuntu) or brew install espeak-ng (macOS)"
)
# Accent name -> espeak-ng voice file. (en-gb is the file gmw/en; see the module docstring.)
ACCENTS = {
    "en-gb": "gmw/en",
    "en-us": "gmw/en-US",
    "en-gb-scotland": "gmw/en-GB-scotland",
    "en-gb-x-gbclan": "gmw/en-GB-x-gbclan",
    "en-gb-x-rp": "gmw/en-GB-x-rp",
    "en-gb-x-gbcwmd": "gmw/en-GB-x-gbcwmd",
    "en-029": "gmw/en-029",
    "en-us-nyc": "gmw/en-US-nyc",
}
# Variants that add no new voice (espeak-ng 1.51): "fast" sounds exactly like no variant; "caleb"
# and "klatt6" exactly like "klatt"; "Mr" is how --voices=variant lists the file "Mr serious",
# a name espeak-ng cannot find, so it is the plain voice too.
EXCLUDED_VARIANTS = frozenset({"fast", "caleb", "klatt6", "Mr"})
SPEED_RANGE = (80, 450)  # words per minute espeak-ng accepts (-s); it clamps slower ones to 80
PITCH_RANGE = (0, 99)  # espeak-ng's -p


def program() -> str:
    """The path of the espeak-ng program; UserError (``MISSING``) when it is not installed."""
    path = shutil.which(PROGRAM)
    if path is None:
        raise UserError(MISSING)
    return path


@functools.cache
def version() -> str:
    """espeak-ng's version, e.g. "1.51" (from ``espeak-ng --version``)."""
    output = _run([program(), "--version"]).decode(errors="replace")
    words = output.split(":", 1)[-1].split()  # "eSpeak NG text-to-speech: 1.51  Data at: ..."
    return words[0] if words else output.strip()


@functools.cache
def variants() -> tuple[str, ...]:
    """The voice variants espeak-ng lists (``--voices=variant``), sorted, without
    ``EXCLUDED_VARIANTS``."""
    listing = _run([program(), "--voices=variant"]).decode(errors="replace")
    files = [word for line in listing.splitlines() for word in line.split() if word[:3] == "!v/"]
    return tuple(sorted({file[3:] for file in files} - EXCLUDED_VARIANTS))


def voice_name(accent: str, variant: str) -> str:
    """The espeak-ng voice of an ``ACCENTS`` name and a variant, e.g. "gmw/en-US+f2"."""
    if accent not in ACCENTS:
        raise UserError(f"unknown accent {accent!r}; give one of {', '.join(ACCENTS)}")
    return f"{ACCENTS[accent]}+{variant}"


def synthesise(
    text: str, voice: str, *, speed: int = 175, pitch: int = 50, rate: int = 16000
) -> np.ndarray:
    """``text`` spoken by espeak-ng ``voice`` (e.g. from ``voice_name()``), at ``rate`` Hz.

    Args:
        text: what to say (plain text, not starting with "-").
        voice: an espeak-ng voice name.
        speed: words per minute (-s), 80..450.
        pitch: base pitch (-p), 0..99.
        rate: the sampling rate of the result (espeak-ng speaks at 22050 Hz; ``resample``).
    Returns:
        (N,) float32 samples in [-1, 1).
    """
    if not text.strip() or text.lstrip().startswith("-"):
        raise UserError(f"text to speak must be words, not empty or an option: {text!r}")
    _check_range(speed, SPEED_RANGE, "speed (words per minute)")
    _check_range(pitch, PITCH_RANGE, "pitch")
    command = [program(), "--stdout", "-v", voice, "-s", str(speed), "-p", str(pitch), text]
    samples, espeak_rate = read_wav_bytes(_run(command))
    return resample(samples, espeak_rate, rate)


def _run(command: list[str]) -> bytes:
    """The standard output of ``command``; UserError with espeak-ng's own message if it fails
    (it exits 0 with nothing on stdout for some errors, so that counts as failing too)."""
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0 or not result.stdout:
        message = result.stderr.decode(errors="replace").strip() or f"exit {result.returncode}"
        raise UserError(f"{' '.join(command[1:])} failed: {message}; check the voice name")
    return result.stdout


def _check_range(value, limits: tuple[int, int], name: str) -> None:
    """UserError unless ``value`` is an integer within ``limits`` (inclusive)."""
    low, high = limits
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer)
        or not low <= value <= high
    ):
        raise UserError(f"{name} must be an integer from {low} to {high}, got {value!r}")
