"""See vanishing and exploding gradients: how far a gradient travels back through time.

Three measurements; the first two come from the one backpropagation-through-time pass that
training runs anyway (no second pass):

- ``dL/dh_t`` at every step, layer and direction: the gradient of the loss with respect to the
  hidden state h[t] the cell computes at step t, through every path (its output y[t] and all later
  steps). The kernels write it while they run backward (``recording_hidden_gradients``). For an
  LSTM it is the gradient of h[t], not of the cell state c[t]. Past a sequence's length (ragged
  batches) the cell's h[t] is not used, so its gradient is zero; the gradient of the frozen final
  state counts at the last valid step. The reverse direction of a bidirectional layer is indexed
  by input step: its entry at t is the gradient of the state it computed after reading x[t].
  The norm at step t is the L2 norm over the whole (B, H) slice.
- the norm of each parameter's gradient;
- the largest singular value of the step Jacobian d state[t] / d state[t-1] (first layer, forward
  direction), per sequence: how much one step can stretch a signal at most, computed from the
  cells' own backward (one step, one basis vector per row of the state). The state is h, or
  (h, c) for an LSTM (a 2H x 2H Jacobian: the path through c is the LSTM's point). The product of
  these over steps bounds how much a gradient can grow on its way back.

``diagnose_fresh`` runs them on a freshly initialised layer whose loss depends on the last step's
output only, so the norms show how much of a signal from the end reaches each earlier step. It
works in float64, so values far below float32's range (1e-38) still show.

Verdict, from ratio = |dL/dh_0| / |dL/dh_{T-1}| (first layer, forward direction):
``vanishing`` below 1e-2, ``exploding`` above 1e2 (or not finite: float64 overflowed),
``stable`` in between: within two orders of magnitude over the whole sequence.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np

from rnnkit import cells
from rnnkit.errors import UserError
from rnnkit.nn.cells import RecurrentCell
from rnnkit.nn.module import Module
from rnnkit.nn.recurrent import Recurrent

VANISHING_BELOW = 1e-2
EXPLODING_ABOVE = 1e2
FRESH_INPUTS = 2  # input features of the fresh layer (as in the adding problem)


# ---------------------------------------------------------------- any model


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


def l2_norm(array) -> float:
    """The L2 norm of all entries in float64, scaled first so tiny values do not underflow."""
    array = np.asarray(array, dtype=np.float64)
    largest = float(np.abs(array).max()) if array.size else 0.0
    if largest == 0.0 or not math.isfinite(largest):
        return largest
    return largest * float(np.sqrt(np.square(array / largest).sum()))


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


# ---------------------------------------------------------------- a fresh layer


def diagnose_fresh(
    cell: str,
    nonlinearity: str = "tanh",
    init: str = "uniform",
    length: int = 100,
    hidden: int = 64,
    seed: int = 0,
    forget_bias: float | None = None,
    *,
    layers: int = 1,
    batch: int = 8,
    spectral_radius: float | None = None,
    jacobian: bool = True,
) -> dict:
    """Gradient flow through a freshly initialised recurrent layer, in float64.

    The layer (``cell`` 'rnn', 'lstm' or 'gru'; ``nonlinearity`` for 'rnn' only; ``init`` one of
    ``rnnkit.nn.init.SCHEMES``; ``forget_bias`` for 'lstm') reads ``batch`` sequences of
    ``length`` steps of standard-normal noise with 2 features, from a zero state. The loss is
    mean_b(u . h_T[b]), u a random unit vector: it depends on the last step's output only.
    ``spectral_radius`` rescales each gate's block of every ``weight_hh`` to that spectral
    radius (largest |eigenvalue|) after initialisation.

    Returns a JSON-able dict: ``grad_norms`` (|dL/dh_t| for t = 0..T-1, first layer),
    ``grad_norms_by_layer`` ({"layer k": list}), ``ratio_first_to_last``
    (grad_norms[0] / grad_norms[-1]), ``verdict`` ('vanishing', 'exploding' or 'stable', see the
    module docstring), ``jacobian_norms`` (per step, the step Jacobian's largest singular value
    for the batch's first sequence, first layer; None when ``jacobian`` is False: it costs T
    singular value decompositions of (S, S), S = H, or 2H for an LSTM), ``param_grad_norms``,
    ``loss`` and ``config``.
    """
    spec = cells.get(cell)
    if "nonlinearity" not in spec.options and nonlinearity != "tanh":
        raise UserError(
            f"nonlinearity={nonlinearity!r} is for cell='rnn' only; {cell} has fixed gates"
        )
    for name, value in (("length", length), ("hidden", hidden), ("layers", layers),
                        ("batch", batch)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"{name} must be an int >= 1, got {value!r}")
    if spectral_radius is not None and not spectral_radius > 0:
        raise UserError(f"spectral_radius must be > 0 (or None), got {spectral_radius!r}")
    options = {"nonlinearity": nonlinearity} if "nonlinearity" in spec.options else {}
    layer = Recurrent(
        cell, FRESH_INPUTS, hidden, layers, init=init, dtype=np.float64, seed=seed,
        forget_bias=forget_bias, **options,
    )  # fmt: skip
    if spectral_radius is not None:
        _set_spectral_radius(layer, spectral_radius)
    rng = np.random.default_rng([seed, 1])  # the data's own stream, apart from the weights'
    x = rng.standard_normal((length, batch, FRESH_INPUTS))  # (T, B, I)
    readout = rng.standard_normal(hidden)
    readout /= np.linalg.norm(readout)

    def backprop(model) -> float:
        (output, _), backward = model.forward(x)
        d_output = np.zeros_like(output)  # (T, B, H): only the last step counts
        d_output[-1] = readout / batch
        backward(d_output)
        return float((output[-1] @ readout).mean())

    flow = gradient_flow(layer, backprop)
    by_layer = flow["hidden_grad_norms"][type(layer).__name__]
    grad_norms = by_layer["layer 0"]
    ratio = grad_norms[0] / grad_norms[-1]
    jacobian_norms = None
    if jacobian:  # the first sequence only: T decompositions of (S, S) already
        jacobian_norms = step_jacobian_norms(layer, x[:, :1])[:, 0].tolist()
    return {
        "config": {
            "cell": cell,
            "nonlinearity": options.get("nonlinearity"),
            "init": init,
            "length": length,
            "hidden": hidden,
            "seed": seed,
            "forget_bias": forget_bias,
            "layers": layers,
            "batch": batch,
            "spectral_radius": spectral_radius,
        },
        "grad_norms": grad_norms,
        "grad_norms_by_layer": by_layer,
        "ratio_first_to_last": ratio,
        "verdict": verdict(ratio),
        "jacobian_norms": jacobian_norms,
        "param_grad_norms": flow["param_grad_norms"],
        "loss": flow["loss"],
    }


def diagnose_language_model(model, ids: np.ndarray) -> dict:
    """Gradient flow through a trained language model reading the token ids ``ids`` (T + 1,).

    The model runs, in a float64 copy without dropout, over ``ids[:-1]`` from a zero state; the
    loss is the cross-entropy of its last prediction (of ``ids[-1]``) only, so the norms show how
    far the signal from the end of the text travels back. Returns the keys of ``diagnose_fresh``
    (``jacobian_norms`` is None) with ``config`` describing the model.
    """
    from rnnkit.train.losses import cross_entropy

    if len(ids) < 3:
        raise UserError(f"the text has {len(ids)} tokens; give at least 3 to diagnose")
    exact = type(model)(**{**model.config(), "dtype": "float64", "dropout": 0.0})
    exact.load_state_dict(model.state_dict())
    inputs, target = ids[:-1, None], ids[-1:, None]  # (T, 1) and (1, 1)

    def backprop(network) -> float:
        (logits, _), backward = network.forward(inputs)
        loss, d_last = cross_entropy(logits[-1:], target)  # the last step's prediction only
        d_logits = np.zeros_like(logits)  # (T, 1, V)
        d_logits[-1:] = d_last
        backward(d_logits)
        return loss

    flow = gradient_flow(exact, backprop)
    by_layer = next(iter(flow["hidden_grad_norms"].values()))
    grad_norms = by_layer["layer 0"]
    ratio = grad_norms[0] / grad_norms[-1]
    config = model.config()
    label = f"{config['cell'].upper()} language model, {config['num_layers']} layer(s)"
    return {
        "config": {"label": label, "length": len(inputs), "hidden": config["hidden_size"]},
        "grad_norms": grad_norms,
        "grad_norms_by_layer": by_layer,
        "ratio_first_to_last": ratio,
        "verdict": verdict(ratio),
        "jacobian_norms": None,
        "param_grad_norms": flow["param_grad_norms"],
        "loss": flow["loss"],
    }


def _set_spectral_radius(layer: Recurrent, radius: float) -> None:
    """Scale each (H, H) gate block of every ``weight_hh`` to spectral radius ``radius``."""
    hidden = layer.hidden_size
    for name, weight in layer.params.items():
        if name.startswith("weight_hh"):
            for start in range(0, weight.shape[0], hidden):
                block = weight[start : start + hidden]  # (H, H), a view
                block *= radius / np.abs(np.linalg.eigvals(block)).max()


def verdict(ratio: float) -> str:
    """'vanishing' below 1e-2, 'exploding' above 1e2 or not finite, else 'stable'."""
    if not math.isfinite(ratio) or ratio > EXPLODING_ABOVE:
        return "exploding"
    return "vanishing" if ratio < VANISHING_BELOW else "stable"


def describe(result: dict) -> str:
    """One line, e.g. "tanh RNN (uniform init), T=100, H=64: the gradient at step 0 is 8.7e-22
    of the gradient at step 99: vanishing"."""
    config, norms = result["config"], result["grad_norms"]
    return (
        f"{_label(config)}, T={config['length']}, H={config['hidden']}: the gradient at step 0 "
        f"is {result['ratio_first_to_last']:.1e} of the gradient at step {len(norms) - 1}: "
        f"{result['verdict']}"
    )


def _label(config: dict) -> str:
    """E.g. 'tanh RNN (uniform init)' or 'LSTM (uniform init, forget bias 1.0)'."""
    if "label" in config:  # a trained model, described when it was diagnosed
        return config["label"]
    name = config["cell"].upper()
    if config.get("nonlinearity"):
        name = f"{config['nonlinearity']} RNN"
    details = [f"{config['init']} init"]
    if config.get("forget_bias") is not None:
        details.append(f"forget bias {config['forget_bias']}")
    if config.get("spectral_radius") is not None:
        details.append(f"spectral radius {config['spectral_radius']}")
    return f"{name} ({', '.join(details)})"


def plot_grad_norms(result: dict, path) -> Path:
    """Draw |dL/dh_t| against t, log scale, one line per layer, to the PNG file ``path``.

    Needs matplotlib (``pip install 'rnnkit[plot]'``); ImportError saying so otherwise.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            "plot_grad_norms needs matplotlib, which is not installed; "
            "install it with: pip install 'rnnkit[plot]'"
        ) from error
    from rnnkit.train.plots import save_figure  # here: rnnkit.train imports this module

    path = Path(path)
    figure, axes = plt.subplots(figsize=(7, 4))
    for label, norms in result["grad_norms_by_layer"].items():
        axes.semilogy(range(len(norms)), norms, label=label)
    axes.set_xlabel("time step t (the loss reads the last step)")
    axes.set_ylabel("|dL/dh_t|")
    axes.set_title(f"{_label(result['config'])}: {result['verdict']}", fontsize=10)
    axes.grid(alpha=0.3, which="both")
    axes.legend()
    figure.tight_layout()
    save_figure(figure, path)
    return path
