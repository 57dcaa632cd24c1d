"""Attention: finite-difference gradients (float64) for every kind, masks, and PyTorch autograd."""

import numpy as np
import pytest

from rnnkit.nn.attention import Attention

S, B, Q, K = 5, 3, 4, 6
LENGTHS = np.array([5, 2, 3])


def setup(kind, seed=0):
    rng = np.random.default_rng(seed)
    query_size = K if kind == "dot" else Q
    attention = Attention(query_size, K, kind, attention_size=7, dtype="float64", seed=seed)
    query = rng.standard_normal((B, query_size))
    keys = rng.standard_normal((S, B, K))
    d_context = rng.standard_normal((B, K))
    d_weights = rng.standard_normal((B, S))
    return attention, query, keys, d_context, d_weights


@pytest.mark.parametrize("kind", ["bahdanau", "general", "dot"])
@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_gradients_match_finite_differences(kind, lengths, gradient_check):
    attention, query, keys, d_context, d_weights = setup(kind)

    def loss():
        context, weights = attention(query, keys, lengths)
        return np.sum(context * d_context) + np.sum(weights * d_weights)

    (_, _), backward = attention.forward(query, keys, lengths)
    d_query, d_keys = backward(d_context, d_weights)
    checks = {"query": (query, d_query), "keys": (keys, d_keys)}
    checks.update(
        {name: (value, attention.grads[name]) for name, value in attention.params.items()}
    )
    gradient_check(loss, checks)


@pytest.mark.parametrize("kind", ["bahdanau", "general", "dot"])
def test_masked_steps_get_zero_weight_and_no_gradient(kind):
    attention, query, keys, d_context, _ = setup(kind)
    context, weights = attention(query, keys, LENGTHS)
    valid = np.arange(S)[None, :] < LENGTHS[:, None]  # (B, S)
    assert np.all(weights[~valid] == 0.0)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    (_, _), backward = attention.forward(query, keys, LENGTHS)
    _, d_keys = backward(d_context)
    assert np.all(d_keys.transpose(1, 0, 2)[~valid] == 0.0)
    changed = keys.copy()
    changed[4, 1] += 100.0  # a padded step of example 1
    np.testing.assert_allclose(attention(query, changed, LENGTHS)[0], context)


def test_large_scores_stay_finite():
    attention, query, keys, _, _ = setup("dot")
    context, weights = attention(query * 1e4, keys, LENGTHS)
    assert np.isfinite(context).all() and np.isfinite(weights).all()


def test_attend_per_step_equals_forward():
    attention, query, keys, d_context, _ = setup("bahdanau")
    memory = attention.encode(keys, LENGTHS)
    (context, _), backward = attention.attend(query, memory)
    np.testing.assert_allclose(context, attention(query, keys, LENGTHS)[0])
    d_query = backward(d_context)
    assert d_query.shape == (B, Q) and memory.backward().shape == keys.shape


def test_bad_input():
    with pytest.raises(ValueError, match="kind"):
        Attention(4, 4, "cosine")
    with pytest.raises(ValueError, match="query_size == key_size"):
        Attention(4, 6, "dot")
    attention, query, keys, _, _ = setup("general")
    with pytest.raises(ValueError, match="keys must have shape"):
        attention(query, keys[:, :, :2])
    with pytest.raises(ValueError, match="query must have shape"):
        attention(query[:, :2], keys)
    with pytest.raises(ValueError, match="lengths"):
        attention(query, keys, np.array([0, 1, 2]))


@pytest.mark.parametrize("kind", ["bahdanau", "general", "dot"])
def test_against_torch_autograd(kind, torch):
    attention, query, keys, d_context, d_weights = setup(kind, seed=3)
    t = {name: torch.tensor(value, requires_grad=True) for name, value in attention.params.items()}
    tq = torch.tensor(query, requires_grad=True)
    tk = torch.tensor(keys, requires_grad=True)
    if kind == "bahdanau":
        hidden = torch.tanh(tk @ t["weight_key"].T + t["bias"] + (tq @ t["weight_query"].T)[None])
        scores = hidden @ t["v"]  # (S, B)
    else:
        probe = tq if kind == "dot" else tq @ t["weight"]
        scores = torch.einsum("sbk,bk->sb", tk, probe)
    valid = torch.tensor(np.arange(S)[:, None] < LENGTHS[None, :])
    weights = torch.softmax(scores.masked_fill(~valid, float("-inf")), dim=0).T  # (B, S)
    context = torch.einsum("bs,sbk->bk", weights, tk)
    (
        context.mul(torch.tensor(d_context)).sum() + weights.mul(torch.tensor(d_weights)).sum()
    ).backward()
    (ours, our_weights), backward = attention.forward(query, keys, LENGTHS)
    d_query, d_keys = backward(d_context, d_weights)
    np.testing.assert_allclose(ours, context.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(our_weights, weights.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(d_query, tq.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(d_keys, tk.grad.numpy(), atol=1e-10)
    for name, tensor in t.items():
        np.testing.assert_allclose(attention.grads[name], tensor.grad.numpy(), atol=1e-10)
