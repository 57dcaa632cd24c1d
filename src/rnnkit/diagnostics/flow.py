"""How far gradients travel back through time in any model holding recurrent layers: dL/dh_t
recorded by the one backward pass, the norm of each parameter's gradient, and the step
Jacobian's largest singular value (see ``rnnkit.diagnostics``)."""

from __future__ import annotations

import contextlib
import math

import numpy as np

from rnnkit.errors import UserError
from rnnkit.nn.cells import RecurrentCell
from rnnkit.nn.module import Module
from rnnkit.nn.norms import l2_norm
from rnnkit.nn.recurrent import Recurrent


def recurrent_layers(model: Module) -> dict[str, Recurrent]:
    """The recurrent layers (RNN, LSTM, GRU) in ``model``, itself included, by name.

    A layer's name is the prefix of its parameters in ``model.params`` ("rnn" for
    ``rnn.weight_hh_l0``), else its attribute path; the model itself is named by its class.
    """
    found: dict[str, Recurrent] = {}
    seen: set[int] = set()

    def visit(module: Module, path: str) -> None:
        if id(module) in seen:
            return
        seen.add(id(module))
        if isinstance(module, Recurrent):
            found[_layer_name(model, module, path)] = module
            return
        for attribute, value in vars(module).items():
            children = value if isinstance(value, list | tuple) else (value,)
            for position, child in enumerate(children):
                if isinstance(child, Module):
                    suffix = f".{position}" if isinstance(value, list | tuple) else ""
                    visit(child, f"{path}.{attribute}{suffix}".lstrip("."))

    visit(model, "")
    return found


def _layer_name(model: Module, layer: Recurrent, path: str) -> str:
    key, array = next(iter(layer.params.items()))
    for name, value in model.params.items():
        if value is array:
            return name.removesuffix(key).rstrip(".") or type(layer).__name__
    return path or type(layer).__name__


@contextlib.contextmanager
def recording_hidden_gradients(model: Module):
    """While active, every backward of a recurrent layer in ``model`` records dL/dh[t].

    Yields ``{layer name: list}``; each backward appends one array of shape
    (num_layers * num_directions, T, B, H), time-major, indexed as the layer's state stack
    (layer k, direction d at k * num_directions + d). The kernels fill it during the ordinary
    backward pass; outside this context they do no extra work.
    """
    layers = recurrent_layers(model)
    records: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    for name, layer in layers.items():
        layer.dh_records = records[name]
    try:
        yield records
    finally:
        for layer in layers.values():
            layer.dh_records = None


def gradient_flow(model: Module, backprop) -> dict:
    """Gradient norms of one training pass: through time and per parameter.

    Args:
        model: a Module holding recurrent layers.
        backprop: ``backprop(model) -> loss``: forward, loss and backward on one batch (as a
            Trainer task's ``train_batch`` does); each recurrent layer must run backward once.
    Returns:
        ``loss``; ``hidden_grad_norms``: {layer name: {"layer k" or "layer k reverse": list of
        |dL/dh_t| over T steps}}; ``param_grad_norms``: {parameter name: |gradient|};
        ``grad_norm``: the global norm. Norms are L2, computed in float64. The model's gradients
        are zeroed first and hold this pass's gradients afterwards.
    """
    model.zero_grad()
    with recording_hidden_gradients(model) as records:
        loss = float(backprop(model))
    layers = recurrent_layers(model)
    hidden_grad_norms = {}
    for name, calls in records.items():
        if len(calls) > 1:
            raise UserError(
                f"layer {name!r} ran backward {len(calls)} times in one pass; gradient_flow "
                "follows one pass through each layer: give a backprop that runs it once"
            )
        if calls:
            hidden_grad_norms[name] = _by_layer(calls[0], layers[name].directions)
    param_grad_norms = {name: l2_norm(grad) for name, grad in model.grads.items()}
    return {
        "loss": loss,
        "hidden_grad_norms": hidden_grad_norms,
        "param_grad_norms": param_grad_norms,
        "grad_norm": math.sqrt(sum(norm**2 for norm in param_grad_norms.values())),
    }


def _by_layer(record: np.ndarray, directions: int) -> dict[str, list[float]]:
    """{"layer k" / "layer k reverse": per-step norms} from a (L*D, T, B, H) record."""
    named = {}
    for index, stack_entry in enumerate(record):
        layer, direction = divmod(index, directions)
        label = f"layer {layer}" + (" reverse" if direction else "")
        named[label] = [l2_norm(step) for step in stack_entry]
    return named


def step_jacobian_norms(layer: Recurrent, x: np.ndarray) -> np.ndarray:
    """Largest singular value of d state[t] / d state[t-1] at every step, for each sequence.

    Args:
        layer: an RNN, LSTM or GRU; its first layer's forward direction is measured, starting
            from a zero state.
        x: (T, B, input_size) time-major input, all sequences T steps long.
    Returns:
        (T, B) float64: entry [t, b] is the spectral norm of sequence b's step Jacobian at step
        t, (H, H), or (2H, 2H) over the LSTM's state (h, c).
    """
    x = np.asarray(x, dtype=layer.dtype)
    if x.ndim != 3 or x.shape[2] != layer.input_size:
        raise UserError(
            f"x must have shape (T, B, input_size={layer.input_size}), got {x.shape}; pass a "
            "time-major batch (transpose a batch-first one with x.transpose(1, 0, 2))"
        )
    cell = _first_cell(layer)
    widths = layer.state_sizes  # each part's width
    size = sum(widths)  # the state's size S
    steps, batch, _ = x.shape
    basis = np.tile(np.eye(size, dtype=layer.dtype), (batch, 1))  # (B*S, S): row b*S+i is e_i
    starts = np.cumsum((0, *widths))
    d_new = tuple(basis[:, a:b] for a, b in zip(starts[:-1], starts[1:], strict=True))
    state = tuple(np.zeros((batch, width), dtype=layer.dtype) for width in widths)
    norms = np.empty((steps, batch))
    for t in range(steps):
        rows = tuple(np.repeat(part, size, axis=0) for part in state)  # (B*S, H): S copies each
        new, backward = cell.forward(np.repeat(x[t], size, axis=0), _public(rows))
        _, d_previous = backward(_public(d_new))  # row b*S+i: d new[i] / d state, sequence b
        jacobians = np.concatenate(_parts(d_previous), axis=1)  # (B*S, S)
        jacobians = jacobians.reshape(batch, size, size)  # (B, S, S)
        norms[t] = np.linalg.norm(jacobians.astype(np.float64), 2, axis=(1, 2))
        state = tuple(part[::size] for part in _parts(new))  # (B, H): one copy per sequence
    return norms


def _first_cell(layer: Recurrent):
    """A cell holding (copies of) the weights of ``layer``'s first layer, forward direction."""
    cell = RecurrentCell(
        layer.cell.name, layer.input_size, layer.hidden_size, layer.bias, dtype=layer.dtype,
        seed=0, **layer.cell_options,
    )  # fmt: skip
    cell.load_state_dict({role: layer.params[f"{role}_l0"] for role in cell.params})
    return cell


def _parts(state) -> tuple:
    return state if isinstance(state, tuple) else (state,)


def _public(parts: tuple):
    return parts[0] if len(parts) == 1 else parts
