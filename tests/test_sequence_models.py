"""The many-to-one and many-to-many models: finite-difference gradients (float64) through every
pooling mode, ragged lengths, both input kinds and both directions; padding that changes no
prediction; save and load."""

import numpy as np
import pytest

from rnnkit.io.models import load, save
from rnnkit.models.classifier import SequenceClassifier
from rnnkit.models.forecaster import ForecastEnsemble, Forecaster
from rnnkit.models.regressor import SequenceRegressor

T, B, F, VOCAB = 5, 3, 2, 6
LENGTHS = np.array([5, 2, 3])


def features(seed=0, steps=T):
    return np.random.default_rng(seed).standard_normal((steps, B, F))


def ids(seed=0, steps=T):
    return np.random.default_rng(seed).integers(0, VOCAB, (steps, B))


def weighted_sum_check(model, x, lengths, output_shape, gradient_check, differentiable_x):
    """Loss = sum(output * fixed weights); every parameter's gradient (and x's, for features)
    against central differences."""
    weights = np.random.default_rng(9).standard_normal(output_shape)
    model.zero_grad()
    output, backward = model.forward(x, lengths)
    assert output.shape == output_shape
    d_x = backward(weights)
    checks = {name: (param, model.grads[name].copy()) for name, param in model.params.items()}
    if differentiable_x:
        checks["x"] = (x, d_x)
    else:
        assert d_x is None

    def loss():
        return float((model(x, lengths) * weights).sum())

    gradient_check(loss, checks)


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_classifier_on_features_matches_finite_differences(
    pooling, bidirectional, cell, gradient_check
):
    model = SequenceClassifier(
        3, input_size=F, hidden_size=4, cell=cell, bidirectional=bidirectional,
        pooling=pooling, dtype="float64", seed=1,
    )  # fmt: skip
    weighted_sum_check(model, features(), LENGTHS, (B, 3), gradient_check, True)


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_classifier_on_ids_two_layers_matches_finite_differences(pooling, gradient_check):
    model = SequenceClassifier(
        2, vocab_size=VOCAB, embedding_dim=3, hidden_size=4, num_layers=2, cell="lstm",
        bidirectional=True, pooling=pooling, dtype="float64", seed=2,
    )  # fmt: skip
    weighted_sum_check(model, ids(), LENGTHS, (B, 2), gradient_check, False)


@pytest.mark.parametrize("lengths", [None, LENGTHS])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_regressor_matches_finite_differences(lengths, bidirectional, gradient_check):
    model = SequenceRegressor(
        2, input_size=F, hidden_size=4, cell="gru", bidirectional=bidirectional,
        dtype="float64", seed=3,
    )  # fmt: skip
    weighted_sum_check(model, features(), lengths, (T, B, 2), gradient_check, True)


def test_tagger_on_ids_matches_finite_differences(gradient_check):
    model = SequenceRegressor(
        4, vocab_size=VOCAB, embedding_dim=3, hidden_size=4, dtype="float64", seed=4
    )
    weighted_sum_check(model, ids(), LENGTHS, (T, B, 4), gradient_check, False)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_forecaster_matches_finite_differences(cell, gradient_check):
    model = Forecaster(F, 3, hidden_size=4, num_layers=2, cell=cell, dtype="float64", seed=5)
    weights = np.random.default_rng(9).standard_normal((B, 3))
    window = features()
    predictions, backward = model.forward(window)
    assert predictions.shape == (B, 3)
    d_window = backward(weights)
    checks = {name: (param, model.grads[name].copy()) for name, param in model.params.items()}
    checks["window"] = (window, d_window)
    gradient_check(lambda: float((model(window) * weights).sum()), checks)


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_changes_no_prediction(pooling, bidirectional):
    """A sequence scores the same alone, padded with garbage in a batch, or beside others."""
    model = SequenceClassifier(
        2, vocab_size=VOCAB, embedding_dim=3, hidden_size=5, bidirectional=bidirectional,
        pooling=pooling, dtype="float64", seed=6,
    )  # fmt: skip
    batch = ids(steps=7)
    lengths = np.array([7, 2, 4])
    together = model(batch, lengths)
    for column, length in enumerate(lengths):
        alone = model(batch[:length, column : column + 1], None)
        np.testing.assert_allclose(together[column], alone[0], rtol=1e-12, atol=1e-12)
    other_padding = batch.copy()
    other_padding[2:, 1] = VOCAB - 1 - other_padding[2:, 1]  # past length 2: other ids
    np.testing.assert_allclose(model(other_padding, lengths), together, rtol=1e-12, atol=1e-12)


def test_padded_steps_get_no_output_and_no_gradient():
    model = SequenceRegressor(2, input_size=F, hidden_size=4, dtype="float64", seed=7)
    x = features()
    y, backward = model.forward(x, LENGTHS)
    assert not y[2:, 1].any()  # sequence 1 has 2 steps
    d_x = backward(np.ones_like(y))
    assert not d_x[2:, 1].any()


@pytest.mark.parametrize(
    "model",
    [
        SequenceClassifier(3, vocab_size=VOCAB, embedding_dim=3, hidden_size=4, pooling="max",
                           bidirectional=True, dropout=0.2, seed=0),
        SequenceClassifier(2, input_size=F, hidden_size=4, num_layers=2, cell="lstm", seed=0),
        SequenceRegressor(2, input_size=F, hidden_size=4, cell="rnn", seed=0),
        Forecaster(F, 7, hidden_size=4, cell="lstm", seed=0),
        ForecastEnsemble(F, 2, members=3, hidden_size=4, dropout=0.1, seed=0),
    ],
    ids=["classifier-text", "classifier-numbers", "regressor", "forecaster", "ensemble"],
)  # fmt: skip
def test_saved_models_come_back_identical(model, tmp_path):
    save(model, tmp_path / "model.safetensors")
    loaded = load(tmp_path / "model.safetensors")
    assert type(loaded) is type(model) and loaded.config() == model.config()
    x = ids() if model.config().get("vocab_size") else features().astype(np.float32)
    arguments = (x,) if isinstance(model, Forecaster | ForecastEnsemble) else (x, LENGTHS)
    np.testing.assert_array_equal(loaded(*arguments), model(*arguments))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SequenceClassifier(1, input_size=2), "num_classes must be a whole number >= 2"),
        (lambda: SequenceClassifier(2), "give exactly one of vocab_size"),
        (lambda: SequenceClassifier(2, vocab_size=5, input_size=2), "give exactly one of"),
        (lambda: SequenceClassifier(2, input_size=2, pooling="sum"), "pooling='sum' is not"),
        (lambda: SequenceClassifier(2, input_size=2, cell="tcn"), "cell='tcn' is not one of"),
        (lambda: SequenceRegressor(0, input_size=2), "output_size must be a whole number"),
        (lambda: Forecaster(2, 0), "horizon must be a whole number >= 1"),
        (lambda: ForecastEnsemble(2, members=0), "members must be a whole number >= 1"),
    ],
)
def test_bad_arguments_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_an_ensemble_forecasts_its_members_mean_and_they_differ():
    model = ForecastEnsemble(F, 2, members=3, hidden_size=4, dropout=0.5, seed=0)
    x = features().astype(np.float32)
    each = [member(x) for member in model.members]  # (B, 2) each
    np.testing.assert_allclose(model(x), np.mean(each, axis=0), rtol=1e-6)
    assert not np.allclose(each[0], each[1])  # different initial weights
    names = model.members[0].generators()  # checkpoints keep each member's dropout draws
    assert set(model.generators()) == {f"member{k}.{name}" for k in range(3) for name in names}
    assert sorted(model.params) == sorted(model.grads)
    assert len(model.params) == 3 * len(model.members[0].params)


def test_classifier_learns_a_ragged_task():
    """Class = whether token 1 occurs in the sequence, lengths 1..8: learnt well above chance."""
    from rnnkit.train.losses import cross_entropy
    from rnnkit.train.optim import Adam

    rng = np.random.default_rng(0)
    x = rng.integers(2, VOCAB, (8, 64))
    lengths = rng.integers(1, 9, 64)
    labels = rng.integers(0, 2, 64)
    for column in np.flatnonzero(labels):
        x[rng.integers(0, lengths[column]), column] = 1
    model = SequenceClassifier(2, vocab_size=VOCAB, embedding_dim=4, hidden_size=8,
                               pooling="max", seed=0)  # fmt: skip
    optimizer = Adam(model, lr=0.05)
    for _ in range(60):
        optimizer.zero_grad()
        logits, backward = model.forward(x, lengths)
        _, d_logits = cross_entropy(logits, labels)
        backward(d_logits)
        optimizer.step()
    assert (model(x, lengths).argmax(axis=1) == labels).mean() > 0.95
