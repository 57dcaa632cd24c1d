"""Text from a language model: the prime is read in, then one token at a time is drawn."""

from __future__ import annotations

import numpy as np

from rnnkit.data.vocabulary import Vocabulary
from rnnkit.errors import UserError


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """ValueError for sampling options outside their range."""
    if not temperature > 0:
        raise UserError(f"temperature must be > 0, got {temperature}; try 0.8")
    if top_k is not None and top_k < 1:
        raise UserError(f"top_k must be at least 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise UserError(f"top_p must be in (0, 1], got {top_p}")


def next_token(
    logits: np.ndarray,
    rng: np.random.Generator,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> int:
    """Draw a token id from logits (V,) softened by ``temperature``, kept to the ``top_k`` most
    likely tokens and then to the smallest set whose probability reaches ``top_p``."""
    scaled = logits.astype(np.float64) / temperature
    probs = np.exp(scaled - scaled.max())
    order = np.argsort(-probs, kind="stable")  # most likely first
    keep = len(order) if top_k is None else min(top_k, len(order))
    if top_p is not None:
        cumulative = np.cumsum(probs[order]) / probs.sum()
        keep = min(keep, int(np.searchsorted(cumulative, top_p)) + 1)
    kept = order[:keep]
    return int(rng.choice(kept, p=probs[kept] / probs[kept].sum()))


def complete(
    model,
    vocabulary: Vocabulary,
    prime: str,
    length: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
) -> str:
    """The continuation (``length`` tokens, without the prime) of ``prime`` by ``model``.

    At character level a prime with a character the vocabulary lacks is refused (ValueError
    naming it); at word level unknown words of the prime are read as ``<unk>``. The continuation
    starts with the space that separates it from the prime, if any, so ``prime + continuation``
    reads right.
    """
    check_sampling(temperature, top_k, top_p)
    ids = vocabulary.encode(prime)
    if len(ids) == 0:
        raise UserError("the prime is empty (or holds no token); give at least one character")
    rng = np.random.default_rng(seed)
    logits, state = model(ids[:, None])  # ids[:, None]: (T, 1), one sequence
    drawn = []
    for _ in range(length):
        token = next_token(logits[-1, 0], rng, temperature, top_k, top_p)
        drawn.append(token)
        logits, state = model(np.array([[token]]), state)  # (1, 1): one step
    return vocabulary.decode_after(prime, drawn)
