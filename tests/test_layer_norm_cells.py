"""The layer-normalised cells (``rnnkit.cells.layer_norm_lstm``, ``layer_norm_gru``): their
normalisation read through a real step, and their values and gradients against the same
equations written in torch and differentiated by autograd (torch has no such cells)."""

import numpy as np
import pytest

import rnnkit
from conftest import relative_error
from rnnkit.cells._layer_norm import EPSILON

INPUTS, HIDDEN, BATCH, STEPS = 5, 6, 3, 4
SATURATED = 40.0  # sig(40) is 1 and sig(-40) is 0 to within 1e-17


def normalised(v: np.ndarray) -> np.ndarray:
    """Each row of (B, N) ``v`` less its mean, over sqrt(its variance + EPSILON)."""
    return (v - v.mean(axis=1, keepdims=True)) / np.sqrt(v.var(axis=1, keepdims=True) + EPSILON)


def parts(state) -> list:
    """A public state (``h`` or ``(h, c)``) as a list of its parts."""
    return list(state) if isinstance(state, tuple) else [state]


def public(state_parts: list):
    """The inverse of ``parts``."""
    return state_parts[0] if len(state_parts) == 1 else tuple(state_parts)


def test_lstm_output_reads_the_normalised_cell_state():
    """h = o * tanh(LN(c)) with o = 1 and gain 1, shift 0: arctanh(h) is c's rows normalised
    (mean 0, variance var / (var + EPSILON)), and the state carries c itself."""
    cell = rnnkit.RecurrentCell("layer_norm_lstm", INPUTS, HIDDEN, dtype=np.float64, seed=0)
    output_gate = slice(3 * HIDDEN, 4 * HIDDEN)
    cell.params["ln_ih_gain"][output_gate] = 0.0
    cell.params["ln_ih_shift"][output_gate] = SATURATED  # o = 1
    x = np.random.default_rng(1).standard_normal((BATCH, INPUTS))
    h, c = cell(x)  # from the zero state: c = i * g
    c_ln = np.arctanh(h)
    np.testing.assert_allclose(c_ln.mean(axis=1), 0.0, atol=1e-12)
    variance = c.var(axis=1)
    np.testing.assert_allclose(c_ln.var(axis=1), variance / (variance + EPSILON), rtol=1e-10)
    np.testing.assert_allclose(c_ln, normalised(c), rtol=1e-10, atol=1e-12)


def gru_reading_its_input_normalisation():
    """A layer_norm_gru cell whose output from the zero state is tanh of its input LN's n block,
    and that block's weights w_n (H, I): z = 0, no biases, and W_ih's three gate blocks equal,
    so that xw's row is [u, u, u] (u = x @ w_n.T) and LN's n block is u's row normalised."""
    cell = rnnkit.RecurrentCell("layer_norm_gru", INPUTS, HIDDEN, dtype=np.float64, seed=0)
    update_gate = slice(HIDDEN, 2 * HIDDEN)
    cell.params["ln_ih_gain"][update_gate] = 0.0
    cell.params["ln_ih_shift"][update_gate] = -SATURATED  # z = 0: h = n
    w_n = cell.params["weight_ih"][2 * HIDDEN :].copy()
    cell.params["weight_ih"][...] = np.concatenate([w_n, w_n, w_n])
    cell.params["bias_ih"][...] = 0.0
    cell.params["bias_hh"][...] = 0.0  # hw = LN(0) + 0 = 0: n = tanh(a_n)
    return cell, w_n


def test_gru_input_normalisation_has_mean_0_and_variance_1_per_row():
    cell, w_n = gru_reading_its_input_normalisation()
    x = 3.0 * np.random.default_rng(1).standard_normal((BATCH, INPUTS))  # the scale goes
    a_n = np.arctanh(cell(x))
    np.testing.assert_allclose(a_n.mean(axis=1), 0.0, atol=1e-12)
    variance = (x @ w_n.T).var(axis=1)
    np.testing.assert_allclose(a_n.var(axis=1), variance / (variance + EPSILON), rtol=1e-10)
    assert np.all(a_n.var(axis=1) > 0.999)


def test_epsilon_is_1e_5_inside_the_square_root():
    """A row whose variance is exactly 1e-5 comes out of LN with variance exactly 1/2."""
    cell, w_n = gru_reading_its_input_normalisation()
    x = np.random.default_rng(1).standard_normal((BATCH, INPUTS))
    x *= np.sqrt(1e-5 / (x @ w_n.T).var(axis=1, keepdims=True))  # each row's u: variance 1e-5
    a_n = np.arctanh(cell(x))
    np.testing.assert_allclose(a_n.var(axis=1), 0.5, rtol=1e-9)


def torch_layer_norm_gru(torch, p, x, h):
    """The cell's equations (``layer_norm_gru``'s notation block) in torch, over all steps."""
    ln = torch.nn.functional.layer_norm  # its default eps is 1e-5, as EPSILON
    ys = []
    for x_t in x:
        a = ln(x_t @ p["weight_ih_l0"].T, (3 * HIDDEN,), p["ln_ih_gain_l0"], p["ln_ih_shift_l0"])
        hw = ln(h @ p["weight_hh_l0"].T, (3 * HIDDEN,), p["ln_hh_gain_l0"], p["ln_hh_shift_l0"])
        a_r, a_z, a_n = (a + p["bias_ih_l0"]).chunk(3, dim=1)
        hw_r, hw_z, hw_n = (hw + p["bias_hh_l0"]).chunk(3, dim=1)
        r, z = torch.sigmoid(a_r + hw_r), torch.sigmoid(a_z + hw_z)
        n = torch.tanh(a_n + r * hw_n)
        h = (1 - z) * n + z * h
        ys.append(h)
    return torch.stack(ys), (h,)


def torch_layer_norm_lstm(torch, p, x, h, c):
    """The cell's equations (``layer_norm_lstm``'s notation block) in torch, over all steps."""
    ln = torch.nn.functional.layer_norm  # its default eps is 1e-5, as EPSILON
    ys = []
    for x_t in x:
        z = ln(x_t @ p["weight_ih_l0"].T, (4 * HIDDEN,), p["ln_ih_gain_l0"], p["ln_ih_shift_l0"])
        z = z + ln(h @ p["weight_hh_l0"].T, (4 * HIDDEN,), p["ln_hh_gain_l0"], p["ln_hh_shift_l0"])
        z_i, z_f, z_g, z_o = (z + p["bias_ih_l0"] + p["bias_hh_l0"]).chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(z_i), torch.sigmoid(z_f), torch.tanh(z_g), torch.sigmoid(z_o)
        c = f * c + i * g
        h = o * torch.tanh(ln(c, (HIDDEN,), p["ln_cell_gain_l0"], p["ln_cell_shift_l0"]))
        ys.append(h)
    return torch.stack(ys), (h, c)


TORCH_CELLS = {"layer_norm_gru": torch_layer_norm_gru, "layer_norm_lstm": torch_layer_norm_lstm}


@pytest.mark.parametrize(("dtype", "tolerance"), [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_values_and_gradients_match_torch_autograd(cell, dtype, tolerance, torch):
    """Every output, final state part and gradient within ``tolerance`` of torch's, relative to
    its largest entry (``relative_error``: float32 rounding makes small entries of a large
    gradient differ by more than 1e-5 of themselves)."""
    layer = rnnkit.Recurrent(cell, INPUTS, HIDDEN, dtype=dtype, seed=0)
    rng = np.random.default_rng(2)
    for name, value in layer.params.items():  # gains and shifts away from 1 and 0
        if name.startswith("ln_"):
            start = 1.0 if "_gain_" in name else 0.0
            value[...] = start + 0.3 * rng.standard_normal(value.shape)
    x = rng.standard_normal((STEPS, BATCH, INPUTS)).astype(dtype)
    state = [rng.standard_normal((1, BATCH, size)).astype(dtype) for size in layer.state_sizes]
    (y, final), backward = layer.forward(x, None, public(state))
    dy = rng.standard_normal(y.shape).astype(dtype)
    d_final = [rng.standard_normal(part.shape).astype(dtype) for part in parts(final)]
    layer.zero_grad()
    dx, d_state = backward(dy, public(d_final))

    params = {name: torch.tensor(value, requires_grad=True) for name, value in layer.params.items()}
    x_t = torch.tensor(x, requires_grad=True)
    state_t = [torch.tensor(part[0], requires_grad=True) for part in state]
    y_t, final_t = TORCH_CELLS[cell](torch, params, x_t, *state_t)
    loss = (y_t * torch.tensor(dy)).sum()
    for part, d_part in zip(final_t, d_final, strict=True):
        loss = loss + (part * torch.tensor(d_part[0])).sum()
    loss.backward()

    pairs = {"y": (y, y_t), "dx": (dx, x_t.grad)}
    for i, part in enumerate(parts(final)):
        pairs[f"final[{i}]"] = (part[0], final_t[i])
    for i, part in enumerate(parts(d_state)):
        pairs[f"d_state0[{i}]"] = (part[0], state_t[i].grad)
    for name, tensor in params.items():
        pairs[f"d_{name}"] = (layer.grads[name], tensor.grad)
    errors = {
        name: relative_error(got, want.detach().numpy()) for name, (got, want) in pairs.items()
    }
    assert max(errors.values()) < tolerance, errors
