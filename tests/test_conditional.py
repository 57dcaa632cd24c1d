"""ConditionalGenerator: gradients (float64), generation, saving, learning."""

import numpy as np
import pytest

import rnnkit
from rnnkit.models.conditional import ConditionalGenerator
from rnnkit.models.seq2seq import target_mask
from rnnkit.train.losses import cross_entropy

LENGTHS = np.array([4, 2, 3])


def setup(cell, layers, seed=0):
    rng = np.random.default_rng(seed)
    model = ConditionalGenerator(
        5, 6, 0, 1, embedding_dim=3, hidden_size=4, num_layers=layers, cell=cell,
        dtype="float64", seed=seed,
    )  # fmt: skip
    vectors = rng.standard_normal((3, 5))
    target = rng.integers(2, 6, (4, 3))
    target[LENGTHS - 1, np.arange(3)] = 1
    return model, vectors, target


@pytest.mark.parametrize("cell, layers", [("gru", 1), ("lstm", 2), ("rnn", 1)])
def test_gradients_match_finite_differences(cell, layers, gradient_check):
    model, vectors, target = setup(cell, layers)
    mask = target_mask(LENGTHS, 4)

    def loss():
        return cross_entropy(model(vectors, target), target, mask, "sum")[0]

    logits, backward = model.forward(vectors, target)
    d_vectors = backward(cross_entropy(logits, target, mask, "sum")[1])
    checks = {name: (value, model.grads[name]) for name, value in model.params.items()}
    checks["vectors"] = (vectors, d_vectors)
    gradient_check(loss, checks)


def test_generate_greedy_matches_teacher_forced_argmax_and_sampling_is_seeded(tmp_path):
    model, vectors, _ = setup("lstm", 2)
    out = model.generate(vectors, max_length=5)
    for b, ids in enumerate(out):
        target = np.array(ids + [1] if len(ids) < 5 else ids)[:, None]
        assert model(vectors[b : b + 1], target).argmax(axis=2)[:, 0].tolist()[: len(ids)] == ids
    assert model.generate(vectors, 5, temperature=1.0, seed=3) == model.generate(
        vectors, 5, temperature=1.0, seed=3
    )
    rnnkit.save(model, tmp_path / "g.safetensors")
    assert rnnkit.load(tmp_path / "g.safetensors").generate(vectors, max_length=5) == out


def test_bad_input():
    with pytest.raises(ValueError, match="cell"):
        ConditionalGenerator(3, 4, 0, 1, cell="tcn")
    with pytest.raises(ValueError, match="end_id"):
        ConditionalGenerator(3, 4, 0, 4)
    model, vectors, target = setup("gru", 1)
    with pytest.raises(ValueError, match="target must be"):
        model(vectors, target.astype(float))
    with pytest.raises(ValueError, match="in_features"):
        model(vectors[:, :2], target)


def test_learns_to_name_one_hot_vectors():
    from rnnkit.train.optim import Adam

    words = [[2, 3], [4, 5, 2], [3, 3, 4, 5]]
    vectors = np.eye(3)
    target = np.ones((5, 3), dtype=np.int64)
    for b, word in enumerate(words):
        target[: len(word), b] = word
    mask = target_mask(np.array([3, 4, 5]), 5)
    model = ConditionalGenerator(3, 6, 0, 1, hidden_size=16, seed=0)
    optimizer = Adam(model, lr=2e-2)
    for _ in range(150):
        optimizer.zero_grad()
        logits, backward = model.forward(vectors, target)
        backward(cross_entropy(logits, target, mask)[1])
        optimizer.step()
    assert model.generate(vectors.astype(np.float32), max_length=6) == words
