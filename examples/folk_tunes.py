"""Write new folk tunes: a character-level language model over ABC notation (one-to-many, as music).

The corpus is the Essen folk-song collection in ABC that ships inside the ``music21`` package
(``music21/corpus/essenFolksong/*.abc``, read from the installed package at run time). Each tune is
kept as its ``X:`` number, metre ``M:``, unit length ``L:``, key ``K:`` and the notes; titles and
archive fields are dropped. An LSTM language model (``rnnkit train lm``'s model and defaults) learns
the text; then tunes are drawn one character at a time from a header prime (``X:1``, metre,
unit length and key: by default the collection's most common, 2/4 in G with sixteenth-note
units) and handed to music21's ABC parser. The first tune that parses is written as ABC, and as
MIDI. (The header is given rather than drawn: the model is trained on a stream with its state
carried from tune to tune, and from a zero state it tends to skip the header it never starts
from in training.)

    pip install -e ".[music]"
    python examples/folk_tunes.py [--steps 1200] [--tunes 5] [--seed 0] [--out runs/folk_tunes]
                                  [--metre 2/4] [--unit 1/16] [--key G]

Its last printed line is ``parsed: <k> of <n> drawn tunes``.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from rnnkit.io.files import atomic_write_bytes
from rnnkit.models.sampling import complete
from rnnkit.tasks import pipeline
from rnnkit.tasks.language_modeling import (
    TASK,
    LanguageModelOptions,
    load_language_model,
)

KEPT_FIELDS = ("M:", "L:", "K:")  # header fields a tune needs to be played
TUNE_CHARS = 600  # drawn per tune; a tune ends at the first blank line


def essen_files() -> list[Path]:
    """The ABC files of the Essen collection inside the installed music21 package."""
    import music21

    folder = Path(music21.__file__).parent / "corpus" / "essenFolksong"
    files = sorted(folder.glob("*.abc"))
    if not files:
        raise SystemExit(f"no ABC files in {folder}; reinstall music21 (pip install music21)")
    return files


def tunes_of(abc: str) -> list[str]:
    """The tunes of an ABC file, each as ``X:1``, the kept header fields and the note lines."""
    tunes = []
    for block in re.split(r"(?m)^X:", abc)[1:]:  # a tune starts at its X: line
        lines = [line.strip() for line in block.splitlines()[1:]]
        header = [line.replace(": ", ":", 1) for line in lines if line[:2] in KEPT_FIELDS]
        notes = [line for line in lines if line and line[1:2] != ":" and not line.startswith("%")]
        if len(header) == len(KEPT_FIELDS) and notes:
            tunes.append("\n".join(["X:1", *header, *notes]))
    return tunes


def first_tune(text: str) -> str:
    """``text`` up to its first blank line: one tune (the model ends tunes that way)."""
    return text.split("\n\n", 1)[0].strip() + "\n"


def parse_tune(tune: str):
    """``(score, None)`` when music21's ABC parser reads ``tune`` into notes, else
    ``(None, why)``."""
    from music21 import converter

    try:
        score = converter.parse(tune, format="abc")
    except Exception as error:  # music21 raises many kinds of error for malformed ABC
        return None, f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
    if not score.flatten().notes:
        return None, "no notes"
    return score, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1200, help="training steps (default 1200)")
    parser.add_argument("--tunes", type=int, default=5, help="tunes drawn after training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/folk_tunes", help="folder for the run and tunes")
    parser.add_argument("--metre", default="2/4", help="M: of the drawn tunes (default 2/4)")
    parser.add_argument("--unit", default="1/16", help="L: of the drawn tunes (default 1/16)")
    parser.add_argument("--key", default="G", help="K: of the drawn tunes (default G)")
    args = parser.parse_args()
    prime = f"X:1\nM:{args.metre}\nL:{args.unit}\nK:{args.key}\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tunes = [tune for path in essen_files() for tune in tunes_of(path.read_text("latin-1"))]
    text = "\n\n".join(tunes) + "\n"
    unseen = sorted(set(prime) - set(text))
    if unseen:  # checked before training: the model could not read such a header
        raise SystemExit(f"the header uses {unseen}, which no Essen tune has; change --metre/--key")
    corpus = out / "essen.abc"
    atomic_write_bytes(corpus, text.encode("utf-8"))
    print(f"corpus: {len(tunes):,} Essen tunes, {corpus.stat().st_size:,} characters in {corpus}")

    options = LanguageModelOptions(
        texts=(str(corpus),), steps=args.steps, seed=args.seed, out=str(out / "model")
    )
    summary = pipeline.train(TASK, options)
    if summary["failed"]:
        raise SystemExit(f"training failed: {summary['stop_reason']}")
    print(f"validation: {summary['val_bits_per_char']:.3f} bits per character")

    model, vocabulary = load_language_model(out / "model" / "model.safetensors")
    parsed = 0
    for index in range(args.tunes):
        drawn = complete(
            model, vocabulary, prime, TUNE_CHARS, temperature=0.8, seed=args.seed + index
        )
        tune = first_tune(prime + drawn)
        score, why = parse_tune(tune)
        verdict = "parsed" if score is not None else f"refused by music21: {why}"
        print(f"\ntune {index + 1} ({verdict}):\n{tune}")
        if score is not None and parsed == 0:
            atomic_write_bytes(out / "tune.abc", tune.encode("utf-8"))
            partial = out / "tune.mid.partial"  # music21 writes in place: rename when whole
            score.write("midi", fp=str(partial))
            os.replace(partial, out / "tune.mid")
            print(f"wrote {out / 'tune.abc'} and {out / 'tune.mid'}")
        parsed += score is not None
    print(f"parsed: {parsed} of {args.tunes} drawn tunes")


if __name__ == "__main__":
    main()
