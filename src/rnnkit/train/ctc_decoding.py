"""Decoding CTC outputs into label sequences: best path (greedy) and prefix beam search.

A labelling's probability is the sum over all its alignments (frame-wise paths that collapse to it:
merge repeats, then drop blanks). Greedy decoding collapses the single most probable path, which
need not belong to the most probable labelling; prefix beam search (Graves 2012, ch. 7; Hannun et
al. 2014) sums alignments per prefix and keeps the ``beam_width`` best prefixes. No language model.
"""

from __future__ import annotations

import math

import numpy as np

from rnnkit.errors import UserError
from rnnkit.train.ctc import _checked_scores, _log_softmax

BLANK_END, LABEL_END = 0, 1  # slots of a prefix's (log p ending in blank, ending in its label)


def greedy_decode(logits_or_log_probs, input_lengths, *, blank: int = 0) -> list[list[int]]:
    """Best-path decoding: the most probable class per frame, repeats merged, blanks dropped.

    Args:
        logits_or_log_probs: (T, B, C) scores; any monotone transform of them decodes the same.
        input_lengths: (B,) valid frames per sequence.
        blank: class id of the blank.
    Returns:
        B label lists.
    """
    scores, input_lengths = _checked_scores(logits_or_log_probs, input_lengths, blank)
    best = scores.argmax(axis=-1)  # (T, B)
    previous = np.vstack([np.full((1, best.shape[1]), -1), best[:-1]])  # (T, B): best at t - 1
    keep = (best != blank) & (best != previous)  # (T, B): first frame of a non-blank run
    return [best[:length, b][keep[:length, b]].tolist() for b, length in enumerate(input_lengths)]


def beam_decode(logits, input_lengths, *, blank: int = 0, beam_width: int = 8) -> list[list[int]]:
    """CTC prefix beam search: the most probable labelling among the prefixes kept.

    Each prefix carries two log-probabilities over frames 0..t: of its alignments ending in a
    blank, and ending in its last label. Appending label k adds both (times p_t(k)), except when k
    repeats the last label: then only the blank-ending ones extend (the others merge into the same
    prefix). A blank, or the last label again, keeps the prefix. Python loops, O(T * beam * C) per
    sequence: meant for evaluation, not the training step.

    Args:
        logits: (T, B, C) unnormalised scores (log-softmax is applied here).
        input_lengths: (B,) valid frames per sequence.
        blank: class id of the blank.
        beam_width: prefixes kept after each frame, >= 1.
    Returns:
        B label lists.
    """
    scores, input_lengths = _checked_scores(logits, input_lengths, blank)
    if (
        not isinstance(beam_width, int | np.integer)
        or isinstance(beam_width, bool)
        or beam_width < 1
    ):
        raise UserError(f"beam_width={beam_width!r} must be an integer >= 1")
    log_probs = _log_softmax(scores.astype(np.float64))  # (T, B, C)
    return [
        _prefix_beam_search(log_probs[:length, b], blank, beam_width)
        for b, length in enumerate(input_lengths)
    ]


def _prefix_beam_search(log_probs: np.ndarray, blank: int, beam_width: int) -> list[int]:
    """The best labelling for one sequence's (T_b, C) log-probabilities."""
    beams = {(): (0.0, -math.inf)}  # prefix -> (log p ending in blank, ending in its label)
    labels = [k for k in range(log_probs.shape[1]) if k != blank]
    for frame in log_probs.tolist():  # Python floats: scalar NumPy calls cost ~1 us each
        extended: dict[tuple, list[float]] = {}
        for prefix, (in_blank, in_label) in beams.items():
            either = _log_add(in_blank, in_label)
            _add(extended, prefix, BLANK_END, either + frame[blank])
            for k in labels:
                if prefix and k == prefix[-1]:
                    _add(extended, prefix, LABEL_END, in_label + frame[k])  # repeat: merged
                    _add(extended, (*prefix, k), LABEL_END, in_blank + frame[k])  # blank between
                else:
                    _add(extended, (*prefix, k), LABEL_END, either + frame[k])
        ranked = sorted(extended.items(), key=lambda item: -_log_add(*item[1]))
        beams = {prefix: tuple(log_ps) for prefix, log_ps in ranked[:beam_width]}
    best = max(beams.items(), key=lambda item: _log_add(*item[1]))[0]
    return list(best)


def _add(beams: dict, prefix: tuple, end: int, log_p: float) -> None:
    """Add probability exp(log_p) to ``prefix``'s alignments ending in ``end``."""
    entry = beams.setdefault(prefix, [-math.inf, -math.inf])
    entry[end] = _log_add(entry[end], log_p)


def _log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) for Python floats, either of which may be -inf."""
    larger, smaller = (a, b) if a >= b else (b, a)
    if smaller == -math.inf:
        return larger
    return larger + math.log1p(math.exp(smaller - larger))
