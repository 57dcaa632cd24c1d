"""Coverage-guided fuzzing of the model-file reader with atheris (libFuzzer for Python).

    pip install atheris
    python benchmarks/fuzz_reader_atheris.py [libFuzzer options, e.g. -max_total_time=600]

The inputs are whole files: the fuzzer starts from tiny models of every kind (tests/hostile.py
trains them into a corpus folder) and mutates their bytes, guided by which lines of rnnkit's
safetensors reader, JSON document checks and model construction each input reaches. Each input
is written to a file and loaded with ``rnnkit.io.models.load_with_extra`` (and a language model
with the reader of ``rnnkit generate``). A ``UserError`` (or an
``OSError``) is the expected refusal; any other exception is reported as a crash with the input
that caused it. Defaults: ``-rss_limit_mb=500 -timeout=60``, so an input that makes the reader
take more memory or time is a failure too.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

with atheris.instrument_imports(include=["rnnkit"]):
    from rnnkit.errors import UserError
    from rnnkit.io.models import load_with_extra
    from rnnkit.tasks.language_modeling import load_language_model

import hostile  # noqa: E402  (tests/hostile.py)

SCRATCH = Path(tempfile.mkdtemp(prefix="rnnkit-atheris-")) / "input.safetensors"


def one_input(data: bytes) -> None:
    SCRATCH.write_bytes(data)
    try:
        model, extra = load_with_extra(SCRATCH)
        if type(model).__name__ == "LanguageModel":
            load_language_model(SCRATCH)
    except (UserError, OSError):
        return


def corpus() -> Path:
    """A folder with one tiny model file of every kind, the fuzzer's starting inputs."""
    folder = Path(tempfile.mkdtemp(prefix="rnnkit-atheris-corpus-"))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        seeds = hostile.train_seeds(folder / "seeds")
    inputs = folder / "inputs"
    inputs.mkdir()
    for kind, seed in seeds.items():
        (inputs / kind).write_bytes(seed["model"].read_bytes())
    return inputs


if __name__ == "__main__":
    arguments = [sys.argv[0], "-rss_limit_mb=500", "-timeout=60", *sys.argv[1:]]
    if not any(not argument.startswith("-") for argument in sys.argv[1:]):
        arguments.append(str(corpus()))
    atheris.Setup(arguments, one_input)
    atheris.Fuzz()
