"""Caption 8x8 digit images with their spelled names ("seven"): one-to-many generation.

The 1,797 images of ``sklearn.datasets.load_digits`` (shipped with scikit-learn) are flattened
to 64 features in [0, 1]; a ConditionalGenerator maps each to an initial GRU state and spells the
name letter by letter. A seeded 80/20 split; the held-out accuracy counts exact names.

    python examples/digit_captions.py [--steps 600] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rnnkit.models.conditional import ConditionalGenerator
from rnnkit.models.seq2seq import target_mask
from rnnkit.train.clip import clip_grad_norm
from rnnkit.train.losses import cross_entropy
from rnnkit.train.optim import Adam

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TOKENS = ["<s>", "</s>", *sorted(set("".join(NAMES)))]


def spelled(labels) -> tuple[np.ndarray, np.ndarray]:
    """Target ids (T, B) of the names (ending with </s>, padded with it) and their lengths."""
    ids = [[TOKENS.index(char) for char in NAMES[label]] + [1] for label in labels]
    lengths = np.array([len(row) for row in ids])
    target = np.ones((lengths.max(), len(ids)), dtype=np.int64)  # (T, B)
    for b, row in enumerate(ids):
        target[: len(row), b] = row
    return target, lengths


def main() -> None:
    from sklearn.datasets import load_digits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    digits = load_digits()
    images = (digits.data / 16.0).astype(np.float32)  # (N, 64) in [0, 1]
    order = np.random.default_rng(args.seed).permutation(len(images))
    cut = int(0.8 * len(images))
    train, test = order[:cut], order[cut:]
    model = ConditionalGenerator(64, len(TOKENS), 0, 1, hidden_size=64, seed=args.seed)
    optimizer = Adam(model, lr=3e-3)
    rng = np.random.default_rng(args.seed + 1)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        chosen = rng.choice(train, 64, replace=False)
        target, lengths = spelled(digits.target[chosen])
        optimizer.zero_grad()
        logits, backward = model.forward(images[chosen], target)
        loss, d_logits = cross_entropy(logits, target, target_mask(lengths, len(target)))
        backward(d_logits)
        clip_grad_norm(model, 5.0)
        optimizer.step()
        if step % 100 == 0:
            print(f"step {step}: loss {loss:.4f}")
    captions = model.generate(images[test], max_length=8)
    words = ["".join(TOKENS[i] for i in ids) for ids in captions]
    right = sum(
        word == NAMES[label] for word, label in zip(words, digits.target[test], strict=True)
    )
    print(f"trained in {time.perf_counter() - start:.1f} s")
    print("examples:", ", ".join(f"{NAMES[label]}->{word}" for word, label in
                                 zip(words[:8], digits.target[test][:8], strict=True)))  # fmt: skip
    print(f"held-out accuracy: {right / len(test):.3f} ({right}/{len(test)} images)")


if __name__ == "__main__":
    main()
