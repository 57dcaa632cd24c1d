"""Short texts as sequences of token ids, for classification, and batches of them.

Texts are lowercased, then split into characters or into words and punctuation marks (as the
language model's word level does). The vocabulary keeps the ``max_size - 1`` most frequent
tokens of the training texts seen at least ``min_count`` times; every other token becomes
``<unk>`` (id 0). A text is cut to its first ``max_len`` tokens; one without tokens is ``<unk>``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from rnnkit.data.vocabulary import UNK, Vocabulary, split_tokens


def text_tokens(text: str, level: str) -> list[str]:
    return split_tokens(text.lower(), level)


def build_vocabulary(texts, level: str, max_size: int, min_count: int) -> Vocabulary:
    """``<unk>`` and the most frequent tokens of ``texts`` (ties in alphabetical order)."""
    counts = Counter(token for text in texts for token in text_tokens(text, level))
    kept = sorted(
        (token for token, count in counts.items() if count >= min_count),
        key=lambda token: (-counts[token], token),
    )
    return Vocabulary([UNK, *[token for token in kept if token != UNK][: max_size - 1]], level)


def encode_texts(texts, vocabulary: Vocabulary, max_len: int) -> list[np.ndarray]:
    """Each text as int64 ids (at least one, at most ``max_len``); unknown tokens are 0."""
    encoded = []
    for text in texts:
        ids = [vocabulary.ids.get(token, 0) for token in text_tokens(text, vocabulary.level)]
        encoded.append(np.array(ids[:max_len] or [0], dtype=np.int64))
    return encoded


def pad_ids(sequences: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded ids (T, B), T the longest length, padding 0, and the lengths (B,)."""
    lengths = np.array([len(sequence) for sequence in sequences], dtype=np.int64)
    ids = np.zeros((lengths.max(), len(sequences)), dtype=np.int64)  # (T, B)
    for column, sequence in enumerate(sequences):
        ids[: len(sequence), column] = sequence
    return ids, lengths
