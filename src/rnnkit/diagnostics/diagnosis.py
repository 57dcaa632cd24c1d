"""Diagnoses: the gradient flow of a fresh layer or of a trained language model, its verdict
(vanishing, exploding or stable) and its one-line description (see ``rnnkit.diagnostics``)."""

from __future__ import annotations

import math

import numpy as np

from rnnkit import cells
from rnnkit.diagnostics.flow import gradient_flow, step_jacobian_norms
from rnnkit.errors import UserError
from rnnkit.nn.recurrent import Recurrent
from rnnkit.train.losses import cross_entropy

VANISHING_BELOW = 1e-2
EXPLODING_ABOVE = 1e2
FRESH_INPUTS = 2  # input features of the fresh layer (as in the adding problem)


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
        "config": {
            "label": label,
            "length": len(inputs),
            "hidden": config["hidden_size"],
            "layers": config["num_layers"],
        },
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
    of the gradient at step 99: vanishing". With several layers it says that the ratio is the
    first layer's, named as in ``grad_norms_by_layer``: "...: in layer 0 (the first of 2) the
    gradient at step 0 is ..."."""
    config, norms = result["config"], result["grad_norms"]
    layers = config.get("layers", 1)
    where = f"in layer 0 (the first of {layers}) the" if layers > 1 else "the"
    return (
        f"{subject(config)}, T={config['length']}, H={config['hidden']}: {where} gradient at "
        f"step 0 is {result['ratio_first_to_last']:.1e} of the gradient at step "
        f"{len(norms) - 1}: {result['verdict']}"
    )


def subject(config: dict) -> str:
    """What was diagnosed, from a result's ``config``: e.g. 'tanh RNN (uniform init)' or 'LSTM
    (uniform init, forget bias 1.0)'."""
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
