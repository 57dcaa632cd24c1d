"""Vocabularies: tokens <-> integer ids, for characters or words.

Character level: every distinct character of the training text is a token; text with a character
the model never saw is refused with an error naming it. Word level: words, punctuation marks and
newlines are tokens (whitespace between them is dropped, and restored as single spaces on
decoding); words rarer than ``min_count``, and words never seen in training, map to ``<unk>``,
which every word vocabulary holds.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from rnnkit.errors import UserError
from rnnkit.io._schema import Fields

LEVELS = ("char", "word")
UNK = "<unk>"
_WORD = re.compile(r"\n|[A-Za-z]+(?:'[A-Za-z]+)*|\d+|[^\sA-Za-z\d]")  # words, numbers, marks
_CLOSING = ".,;:!?)]"  # marks written without a space before them


def split_tokens(text: str, level: str) -> list[str]:
    """The text as a list of tokens (characters, or words/marks/newlines)."""
    if level == "char":
        return list(text)
    return _WORD.findall(text)


def first_token_end(text: str, level: str) -> int:
    """The number of characters of ``text`` up to the end of its first token (0 if it has none).

    The characters after it are those a language model predicts when it reads ``text``.
    """
    if level == "char":
        return min(len(text), 1)
    match = _WORD.search(text)
    return 0 if match is None else match.end()


class Vocabulary:
    """An ordered list of tokens; a token's id is its position."""

    def __init__(self, tokens: list[str], level: str = "char") -> None:
        if level not in LEVELS:
            raise UserError(f"level={level!r} is not one of {list(LEVELS)}")
        if len(set(tokens)) != len(tokens) or not tokens:
            raise UserError("a vocabulary needs at least one token and no token twice")
        if level == "word" and UNK not in tokens:
            raise UserError(f"a word vocabulary needs the token {UNK!r}, for words never seen")
        self.tokens = list(tokens)
        self.level = level
        self.ids = {token: index for index, token in enumerate(self.tokens)}

    @classmethod
    def from_text(cls, text: str, level: str = "char", min_count: int = 1) -> Vocabulary:
        """Every token of ``text`` (sorted; at word level those seen ``min_count`` times, plus
        ``<unk>``)."""
        counts = Counter(split_tokens(text, level))
        if not counts:
            raise UserError("the text is empty: there is nothing to build a vocabulary from")
        if level == "char":
            return cls(sorted(counts), level)
        frequent = sorted(token for token, count in counts.items() if count >= min_count)
        return cls([UNK, *frequent], level)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> np.ndarray:
        """Token ids of ``text`` (int64). Unknown characters raise ValueError naming them;
        unknown words become ``<unk>``."""
        tokens = split_tokens(text, self.level)
        if self.level == "word":
            unk = self.ids[UNK]
            return np.array([self.ids.get(token, unk) for token in tokens], dtype=np.int64)
        unknown = sorted(set(tokens) - set(self.ids))
        if unknown:
            shown = ", ".join(repr(char) for char in unknown[:10])
            raise UserError(
                f"the text holds {len(unknown)} character(s) the model never saw in training: "
                f"{shown}; remove them or train on text that has them"
            )
        return np.array([self.ids[token] for token in tokens], dtype=np.int64)

    def decode(self, ids) -> str:
        """The text of a sequence of ids (word tokens joined by spaces, none around newlines or
        before closing punctuation)."""
        tokens = [self.tokens[int(index)] for index in ids]
        if self.level == "char":
            return "".join(tokens)
        text = re.sub(r" ?\n ?", "\n", " ".join(tokens))
        return re.sub(f" ([{re.escape(_CLOSING)}])", r"\1", text)  # no space before closing marks

    def decode_after(self, prime: str, ids) -> str:
        """The text of ``ids`` as it continues ``prime``: at word level with the space that
        separates it from the prime (none after whitespace, before a newline or a closing mark).
        """
        text = self.decode(ids)
        if self.level == "char" or not (prime and text) or prime[-1].isspace():
            return text
        return text if text[0] in "\n" + _CLOSING else " " + text

    def to_json(self) -> dict:
        return {"level": self.level, "tokens": self.tokens}

    @classmethod
    def from_json(cls, data, where: str = "the saved vocabulary") -> Vocabulary:
        """The vocabulary saved by ``to_json``; a one-line UserError if ``data`` is not one.

        ``where`` names it in messages, e.g. "model.safetensors: its saved vocabulary".
        """
        fields = Fields(data, where, "the model file is damaged: re-train or re-save it")
        level = fields.get("level", str, choices=LEVELS)
        tokens = fields.get("tokens", list, items=str, low=1)
        try:
            return cls(tokens, level)
        except UserError as error:
            return fields.fail("tokens", f"are not a vocabulary ({error})")
