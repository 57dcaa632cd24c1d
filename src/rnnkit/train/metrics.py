"""Figures of merit on held-out data: classification (accuracy, macro F1, confusion matrix),
regression (mean absolute and root mean squared error) and transcription (edit distance, error
rate per reference token)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts: row = true class, column = predicted class."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (true, predicted), 1)
    return counts


def classification_report(true: np.ndarray, predicted: np.ndarray, num_classes: int) -> dict:
    """``accuracy``, ``f1_macro`` (the unweighted mean of the per-class F1 scores; a class never
    predicted nor present scores 0) and ``confusion`` (a list of rows) of class ids (N,)."""
    confusion = confusion_matrix(true, predicted, num_classes)
    hits = np.diag(confusion).astype(np.float64)
    actual, chosen = confusion.sum(axis=1), confusion.sum(axis=0)
    denominator = actual + chosen  # F1 = 2 TP / (2 TP + FP + FN) = 2 TP / (actual + chosen)
    f1 = np.divide(2 * hits, denominator, out=np.zeros_like(hits), where=denominator > 0)
    return {
        "accuracy": float(hits.sum() / len(true)),
        "f1_macro": float(f1.mean()),
        "confusion": confusion.tolist(),
    }


def regression_errors(predicted: np.ndarray, actual: np.ndarray) -> dict:
    """``mae`` and ``rmse`` over all elements."""
    error = np.asarray(predicted, dtype=np.float64) - actual
    return {"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error**2).mean()))}


def edit_distance(a, b) -> int:
    """Levenshtein distance between two token sequences (insert, delete, substitute cost 1)."""
    previous = list(range(len(b) + 1))
    for i, token_a in enumerate(a, start=1):
        current = [i]
        for j, token_b in enumerate(b, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (token_a != token_b))
            )
        previous = current
    return previous[-1]


def sequence_scores(predictions, references) -> dict:
    """``error_rate`` (edits per reference token: the word, phoneme or digit error rate),
    ``sequence_accuracy`` (the share of sequences exactly right) and ``sequences`` (their count)
    of predicted token sequences against references."""
    pairs = list(zip(predictions, references, strict=True))
    errors = sum(edit_distance(predicted, reference) for predicted, reference in pairs)
    total = sum(len(reference) for reference in references)
    right = sum(list(predicted) == list(reference) for predicted, reference in pairs)
    return {
        "error_rate": errors / max(total, 1),
        "sequence_accuracy": right / len(pairs),
        "sequences": len(pairs),
    }
