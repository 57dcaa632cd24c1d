"""Float32 parity with torch.nn.RNN, LSTM, GRU and their cells: values and every gradient.

Both sides get the same weights, data and loss sum(output * R_y) + sum(final_state * R_s);
rnnkit receives the R's as d_output and d_state. Ragged batches go through torch's packed
sequences (unsorted lengths). Without an initial state rnnkit starts from None and torch from
explicit zeros, so that torch has a gradient for the initial state to compare against.
"""

import numpy as np
import pytest

import rnnkit
from rnnkit import cells
from rnnkit.backends import compiled

STEPS, BATCH, INPUTS, HIDDEN = 7, 4, 5, 6
RAGGED = np.array([7, 3, 5, 1])  # unsorted: torch packs with enforce_sorted=False
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}

KINDS = {  # kind: (registered cell, options of both): every cell PyTorch also has
    "rnn_tanh": ("rnn", {"nonlinearity": "tanh"}),
    "rnn_relu": ("rnn", {"nonlinearity": "relu"}),
    **{name: (name, {}) for name in cells.names() if cells.get(name).torch_name and name != "rnn"},
    "lstm_proj": ("lstm", {"proj_size": 3}),  # torch.nn.LSTM(proj_size=3): h 3 wide, c HIDDEN
}
CELL_KINDS = [kind for kind in KINDS if kind != "lstm_proj"]  # torch.nn.LSTMCell has no proj_size
BACKENDS = pytest.mark.parametrize("backend", ["numpy", "compiled"])
SHAPES = [pytest.param(1, False, id="1_layer_uni"), pytest.param(2, True, id="2_layers_bi")]


def parts(state) -> tuple:
    """A state as a tuple of arrays or tensors: ``(h,)``, or ``(h, c)`` for an LSTM."""
    return state if isinstance(state, tuple) else (state,)


def public(state_parts: tuple):
    """The inverse of ``parts``: ``h`` alone, or the tuple ``(h, c)``."""
    return state_parts[0] if len(state_parts) == 1 else tuple(state_parts)


def random_parts(module, leading: tuple, rng: np.random.Generator) -> tuple:
    """One random float32 array per part of ``module``'s state, each ``leading`` + (width,)."""
    return tuple(
        rng.standard_normal((*leading, size)).astype(np.float32) for size in module.state_sizes
    )


def runnable(kind: str, backend: str) -> None:
    """Skip, saying why, where ``backend`` cannot run the kind's cell (numba absent ...)."""
    cell, options = KINDS[kind]
    reason = compiled.unsupported(cells.get(cell), options, np.float32)
    if backend == "compiled" and reason is not None:
        pytest.skip(f"the compiled back end cannot run {kind}: {reason}")


def make_pair(torch, kind: str, backend=None, **options):
    """An rnnkit layer and a torch layer of the same shape, each with its own random weights."""
    cell, kind_options = KINDS[kind]
    torch.manual_seed(0)
    torch_name = cells.get(cell).torch_name
    torch_layer = getattr(torch.nn, torch_name)(INPUTS, HIDDEN, **kind_options, **options)
    layer = rnnkit.Recurrent(
        cell, INPUTS, HIDDEN, seed=0, backend=backend, **kind_options, **options
    )
    return layer, torch_layer


def copy_to_torch(torch, layer, torch_layer) -> None:
    torch_layer.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})


def run_torch(torch, torch_layer, x, lengths, state0, R_y, R_s) -> dict:
    """Values and gradients of the torch layer, keyed like ``run_rnnkit``'s."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    batch_first = torch_layer.batch_first
    x = torch.from_numpy(x).requires_grad_()
    state0 = tuple(torch.from_numpy(part).requires_grad_() for part in state0)
    if lengths is None:
        output, final = torch_layer(x, public(state0))
    else:
        packed = pack_padded_sequence(
            x, torch.from_numpy(lengths), batch_first=batch_first, enforce_sorted=False
        )
        packed_output, final = torch_layer(packed, public(state0))
        output, _ = pad_packed_sequence(packed_output, batch_first=batch_first, total_length=STEPS)
    loss = (output * torch.from_numpy(R_y)).sum()
    for part, r in zip(parts(final), R_s, strict=True):
        loss = loss + (part * torch.from_numpy(r)).sum()
    loss.backward()
    results = {"output": output, "d_x": x.grad}
    results |= {f"final[{i}]": part for i, part in enumerate(parts(final))}
    results |= {f"d_state0[{i}]": part.grad for i, part in enumerate(state0)}
    results |= {f"grad {name}": p.grad for name, p in torch_layer.named_parameters()}
    return {name: value.detach().numpy() for name, value in results.items()}


def run_rnnkit(layer, x, lengths, state0, R_y, R_s) -> dict:
    state = None if state0 is None else public(state0)
    layer.zero_grad()
    (output, final), backward = layer.forward(x, lengths, state)
    d_x, d_state0 = backward(R_y, public(R_s))
    results = {"output": output, "d_x": d_x}
    results |= {f"final[{i}]": part for i, part in enumerate(parts(final))}
    results |= {f"d_state0[{i}]": part for i, part in enumerate(parts(d_state0))}
    results |= {f"grad {name}": grad for name, grad in layer.grads.items()}
    return results


def assert_parity(torch, kind, layer, torch_layer, lengths, with_state) -> None:
    """Run both layers on the same random data and compare every value and gradient."""
    rng = np.random.default_rng(1)
    shape = (BATCH, STEPS, INPUTS) if layer.batch_first else (STEPS, BATCH, INPUTS)
    x = rng.standard_normal(shape).astype(np.float32)
    stack = (layer.num_layers * layer.directions, BATCH)
    state0 = random_parts(layer, stack, rng)
    R_y = rng.standard_normal((*shape[:2], layer.output_size)).astype(np.float32)
    R_s = random_parts(layer, stack, rng)
    ours = run_rnnkit(layer, x, lengths, state0 if with_state else None, R_y, R_s)
    if not with_state:
        state0 = tuple(np.zeros_like(part) for part in state0)
    theirs = run_torch(torch, torch_layer, x, lengths, state0, R_y, R_s)
    assert ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], **TOLERANCE, err_msg=name)


@pytest.mark.parametrize("with_state", [True, False], ids=["state", "no_state"])
@pytest.mark.parametrize("lengths", [None, RAGGED], ids=["equal", "ragged"])
@pytest.mark.parametrize(("num_layers", "bidirectional"), SHAPES)
@pytest.mark.parametrize("kind", KINDS)
@BACKENDS
def test_layer_matches_torch(torch, backend, kind, num_layers, bidirectional, lengths, with_state):
    runnable(kind, backend)
    layer, torch_layer = make_pair(
        torch, kind, backend, num_layers=num_layers, bidirectional=bidirectional
    )
    copy_to_torch(torch, layer, torch_layer)
    assert_parity(torch, kind, layer, torch_layer, lengths, with_state)


@pytest.mark.parametrize("kind", KINDS)
def test_layer_with_torch_weights_matches_torch(torch, kind):
    layer, torch_layer = make_pair(torch, kind, num_layers=2, bidirectional=True)
    layer.load_state_dict(torch_layer.state_dict())
    for name, value in torch_layer.state_dict().items():
        np.testing.assert_array_equal(layer.params[name], value.numpy(), err_msg=name)
    assert_parity(torch, kind, layer, torch_layer, RAGGED, with_state=True)


@pytest.mark.parametrize("kind", KINDS)
def test_batch_first_layer_matches_torch(torch, kind):
    layer, torch_layer = make_pair(torch, kind, num_layers=2, bidirectional=True, batch_first=True)
    copy_to_torch(torch, layer, torch_layer)
    assert_parity(torch, kind, layer, torch_layer, RAGGED, with_state=True)


@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize(("num_layers", "bidirectional"), SHAPES)
def test_lstm_inference_at_a_large_batch_matches_torch(
    torch, num_layers, bidirectional, batch_first
):
    """At a batch of 32 the compiled loops run the batch in two halves side by side (with
    numba): the same numbers as torch's."""
    batch = 32
    options = {"num_layers": num_layers, "bidirectional": bidirectional, "batch_first": batch_first}
    layer, torch_layer = make_pair(torch, "lstm", **options)
    copy_to_torch(torch, layer, torch_layer)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((batch, STEPS, INPUTS) if batch_first else (STEPS, batch, INPUTS))
    x = x.astype(np.float32)
    state0 = random_parts(layer, (num_layers * layer.directions, batch), rng)
    y, state = layer(x, state=state0)
    with torch.no_grad():
        torch_y, torch_state = torch_layer(
            torch.from_numpy(x), tuple(torch.from_numpy(part) for part in state0)
        )
    np.testing.assert_allclose(y, torch_y.numpy(), **TOLERANCE)
    for ours, theirs in zip(state, torch_state, strict=True):
        np.testing.assert_allclose(ours, theirs.numpy(), **TOLERANCE)


@pytest.mark.parametrize("with_state", [True, False], ids=["state", "no_state"])
@pytest.mark.parametrize("kind", CELL_KINDS)
@BACKENDS
def test_cell_matches_torch(torch, backend, kind, with_state):
    runnable(kind, backend)
    name, kind_options = KINDS[kind]
    cell = rnnkit.RecurrentCell(name, INPUTS, HIDDEN, seed=0, backend=backend, **kind_options)
    torch_name = cells.get(name).torch_name
    torch_cell = getattr(torch.nn, f"{torch_name}Cell")(INPUTS, HIDDEN, **kind_options)
    copy_to_torch(torch, cell, torch_cell)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((BATCH, INPUTS)).astype(np.float32)
    state0 = random_parts(cell, (BATCH,), rng)
    R = random_parts(cell, (BATCH,), rng)

    cell.zero_grad()
    new_state, backward = cell.forward(x, public(state0) if with_state else None)
    d_x, d_state0 = backward(public(R))

    if not with_state:
        state0 = tuple(np.zeros_like(part) for part in state0)
    torch_x = torch.from_numpy(x).requires_grad_()
    torch_state0 = tuple(torch.from_numpy(part).requires_grad_() for part in state0)
    torch_new_state = parts(torch_cell(torch_x, public(torch_state0)))
    sum((s * torch.from_numpy(r)).sum() for s, r in zip(torch_new_state, R, strict=True)).backward()

    pairs = {"d_x": (d_x, torch_x.grad)}
    for i, (ours, theirs) in enumerate(zip(parts(new_state), torch_new_state, strict=True)):
        pairs[f"new_state[{i}]"] = (ours, theirs)
    for i, (ours, theirs) in enumerate(zip(parts(d_state0), torch_state0, strict=True)):
        pairs[f"d_state0[{i}]"] = (ours, theirs.grad)
    for name, param in torch_cell.named_parameters():
        pairs[f"grad {name}"] = (cell.grads[name], param.grad)
    assert len(pairs) == 1 + 2 * len(state0) + len(cell.params)
    for name, (ours, theirs) in pairs.items():
        np.testing.assert_allclose(ours, theirs.detach().numpy(), **TOLERANCE, err_msg=name)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_projected_lstm_has_torchs_parameters_and_state_shapes(torch, bidirectional):
    """h is proj_size wide, c hidden_size wide; the output is proj_size per direction."""
    layer, torch_layer = make_pair(torch, "lstm_proj", num_layers=2, bidirectional=bidirectional)
    shapes = {name: tuple(value.shape) for name, value in torch_layer.state_dict().items()}
    assert {name: value.shape for name, value in layer.state_dict().items()} == shapes
    assert shapes["weight_hr_l1"] == (3, HIDDEN) and shapes["weight_hh_l1"] == (4 * HIDDEN, 3)
    directions = 2 if bidirectional else 1
    x = np.random.default_rng(4).standard_normal((STEPS, BATCH, INPUTS)).astype(np.float32)
    output, (h, c) = layer(x)
    assert layer.output_size == 3 * directions and output.shape == (STEPS, BATCH, 3 * directions)
    assert h.shape == (2 * directions, BATCH, 3) and c.shape == (2 * directions, BATCH, HIDDEN)
    with torch.no_grad():
        torch_output, (torch_h, torch_c) = torch_layer(torch.from_numpy(x))
    assert (torch_output.shape, torch_h.shape, torch_c.shape) == (output.shape, h.shape, c.shape)
