"""The gru_reset_before cell against Keras's GRU(reset_after=False) equations written out
independently in torch autograd (float64), and against the gru cell (reset after)."""

import numpy as np
import pytest

import rnnkit

STEPS, BATCH, INPUTS, HIDDEN = 6, 3, 4, 5
CLOSE = {"rtol": 1e-10, "atol": 1e-12}


def keras_reset_before(torch, x, h0, weights: dict, bias: bool):
    """Keras's GRU(reset_after=False), gates in PyTorch's order r, z, n: y (T, B, H), h_T."""
    W_ir, W_iz, W_in = weights["weight_ih_l0"].chunk(3)
    W_hr, W_hz, W_hn = weights["weight_hh_l0"].chunk(3)
    zero = torch.zeros(3 * HIDDEN, dtype=torch.float64)
    b_ir, b_iz, b_in = weights["bias_ih_l0"].chunk(3) if bias else zero.chunk(3)
    b_hr, b_hz, b_hn = weights["bias_hh_l0"].chunk(3) if bias else zero.chunk(3)
    h, ys = h0, []
    for x_t in x:
        r = torch.sigmoid(x_t @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
        z = torch.sigmoid(x_t @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
        n = torch.tanh(x_t @ W_in.T + b_in + (r * h) @ W_hn.T + b_hn)  # reset before W_hn
        h = (1 - z) * n + z * h
        ys.append(h)
    return torch.stack(ys), h


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_values_and_gradients_match_keras_equations_in_torch(torch, bias):
    layer = rnnkit.Recurrent("gru_reset_before", INPUTS, HIDDEN, bias=bias, dtype=np.float64)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((STEPS, BATCH, INPUTS))
    h0 = rng.standard_normal((1, BATCH, HIDDEN))
    R_y, R_s = rng.standard_normal((STEPS, BATCH, HIDDEN)), rng.standard_normal(h0.shape)
    (y, h_n), backward = layer.forward(x, state=h0)
    d_x, d_h0 = backward(R_y, R_s)

    weights = {k: torch.from_numpy(v).requires_grad_() for k, v in layer.state_dict().items()}
    torch_x = torch.from_numpy(x).requires_grad_()
    torch_h0 = torch.from_numpy(h0[0]).requires_grad_()
    torch_y, torch_h_n = keras_reset_before(torch, torch_x, torch_h0, weights, bias)
    loss = (torch_y * torch.from_numpy(R_y)).sum() + (torch_h_n * torch.from_numpy(R_s[0])).sum()
    loss.backward()

    pairs = {"y": (y, torch_y), "h_n": (h_n[0], torch_h_n), "d_x": (d_x, torch_x.grad)}
    pairs["d_h0"] = (d_h0[0], torch_h0.grad)
    pairs |= {f"grad {name}": (layer.grads[name], weights[name].grad) for name in weights}
    for name, (ours, theirs) in pairs.items():
        np.testing.assert_allclose(ours, theirs.detach().numpy(), **CLOSE, err_msg=name)


def test_it_differs_from_the_reset_after_gru_only_where_the_reset_gate_meets_h():
    """Same weights (same seed, shapes and draw order). Without biases, from h = 0, the first
    step is the same (r * (W_hn h) = W_hn (r * h) = 0); from the second step on it differs."""
    before = rnnkit.Recurrent("gru_reset_before", INPUTS, HIDDEN, bias=False, seed=3)
    after = rnnkit.GRU(INPUTS, HIDDEN, bias=False, seed=3)
    for name, value in after.state_dict().items():
        np.testing.assert_array_equal(before.params[name], value, err_msg=name)
    x = np.random.default_rng(4).standard_normal((STEPS, BATCH, INPUTS)).astype(np.float32)
    y_before, _ = before(x)
    y_after, _ = after(x)
    np.testing.assert_allclose(y_before[0], y_after[0], rtol=1e-6, atol=1e-7)
    assert np.abs(y_before[1:] - y_after[1:]).max() > 1e-3
