"""What a recurrent cell is: the ``Cell`` record every cell file fills in, and the small math
the cells share.

A cell is one time step, written twice: ``step`` and ``step_backward``, in NumPy, with its
equations at the top of its file. The reference time loop (``rnnkit.kernels.loop``) runs any
cell through them; it makes the input projection ``xw = x @ W_ih.T`` for all steps in one
product before the loop, and ``dx`` and ``dW_ih`` in one product each after it, so a step sees
its own slice of xw and never ``weight_ih``.

The step protocol (B sequences, G*H rows of the input projection, states as tuples):

    step(xw, state, params, options) -> (new_state, saved)
        xw (B, G*H): x[t] @ W_ih.T, without bias; state: the previous state, one (B, size) array
        per entry of ``Cell.state``; params: the layer's arrays by role (``weight_hh``,
        ``bias_ih`` ...; a bias is absent for a layer built with bias=False); options: the
        cell's options (``Cell.options``, with the layer's values). ``saved`` is whatever
        step_backward needs.
    step_backward(d_state, saved, params, options) -> (d_xw, d_state_prev, grads)
        d_state: the gradients with respect to new_state, part by part; grads: this step's
        gradient of every role in params except ``weight_ih`` (the loop sums them over steps).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from rnnkit.errors import UserError
from rnnkit.io._schema import _shown

# How ``rnnkit.nn.init`` fills each kind of parameter: see ``Cell.parameters``.
PARAMETER_KINDS = ("input", "recurrent", "bias", "projection", "gain", "shift")


@dataclass(frozen=True)
class Cell:
    """One registered cell: everything the layers, models, CLI, initialisation, checks and
    back ends need to know about it.

    Attributes:
        name: the registry key ('lstm'), the CLI's ``--cell`` value and the models' ``cell``.
        summary: one line for help texts.
        gates: G, the blocks of H rows in ``weight_ih`` (G*H, I) and ``weight_hh`` (G*H, S).
        step, step_backward: one time step and its gradient (the protocol above).
        state: the names of the state's parts; the first is h, the output. The public state is
            ``h`` for one part and the tuple of parts otherwise (PyTorch's ``(h, c)``).
        torch_name: the ``torch.nn`` class with the same parameters and numbers, if any.
        forget_gate: the index of the gate block that is a forget gate (``forget_bias`` sets
            its bias; 'xavier_orthogonal' starts it at 1.0), or None.
        options: the cell's own options and their defaults ({'nonlinearity': 'tanh'}).
        choices: the allowed values of options that take one of a few ({'nonlinearity':
            ('tanh', 'relu')}).
        check_options: ``check_options(owner, options, hidden_size)`` raises a one-line
            UserError for a bad value; None when any value is fine.
        state_sizes: ``state_sizes(hidden_size, options)``, the width of each state part;
            None: every part is H wide.
        extra_parameters: ``extra_parameters(input_size, hidden_size, options)``, the cell's
            parameters beyond the four every cell has, as {role: (shape, kind)}; None for none.
        optional_in_config: options a layer's config records only away from their default:
            those a cell gained after models were saved without them (LSTM's proj_size), so
            that those files still load and build the same layer.
    """

    name: str
    summary: str
    gates: int
    step: Callable
    step_backward: Callable
    state: tuple[str, ...] = ("h",)
    torch_name: str | None = None
    forget_gate: int | None = None
    options: Mapping[str, object] = field(default_factory=dict)
    choices: Mapping[str, tuple] = field(default_factory=dict)
    check_options: Callable | None = None
    state_sizes: Callable | None = None
    extra_parameters: Callable | None = None
    optional_in_config: tuple[str, ...] = ()

    def sizes(self, hidden_size: int, options: Mapping) -> tuple[int, ...]:
        """The width of each state part; the first is the output's (a layer direction's)."""
        if self.state_sizes is None:
            return (hidden_size,) * len(self.state)
        return tuple(self.state_sizes(hidden_size, options))

    def parameters(self, input_size: int, hidden_size: int, options: Mapping) -> dict:
        """{role: (shape, kind)} of one layer and direction, in the order they are drawn, the
        biases included (a layer without biases draws them too, and drops them, so that its
        weights are those of the same layer with biases). ``kind`` is one of PARAMETER_KINDS.
        """
        rows = self.gates * hidden_size
        output_size = self.sizes(hidden_size, options)[0]
        shapes = {
            "weight_ih": ((rows, input_size), "input"),
            "weight_hh": ((rows, output_size), "recurrent"),
            "bias_ih": ((rows,), "bias"),
            "bias_hh": ((rows,), "bias"),
        }
        if self.extra_parameters is not None:
            shapes |= self.extra_parameters(input_size, hidden_size, options)
        return shapes

    def config_options(self, options: Mapping) -> dict:
        """The options a layer's config records: all of ``options`` but those named in
        ``optional_in_config`` that are at their default."""
        return {
            name: value
            for name, value in options.items()
            if name not in self.optional_in_config or value != self.options[name]
        }

    def resolved_options(self, owner: str, given: Mapping, hidden_size: int) -> dict:
        """The cell's options with ``given`` values over the defaults, checked; a UserError for
        a name the cell does not have."""
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise UserError(
                f"{owner}: the {self.name} cell has no option {unknown[0]!r} (its options: "
                f"{known}); leave it out"
            )
        options = {**self.options, **given}
        for name, allowed in self.choices.items():
            if not (isinstance(options[name], str) and options[name] in allowed):
                shown = _shown(options[name])
                raise UserError(f"{owner}: {name}={shown} is not one of {list(allowed)}")
        if self.check_options is not None:
            self.check_options(owner, options, hidden_size)
        return options


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function as 0.5 * (1 + tanh(x / 2)): never overflows, one transcendental."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def optional(params: Mapping, role: str):
    """``params[role]``, or 0.0 for a parameter the layer does not have (a bias, bias=False)."""
    return params.get(role, 0.0)


def present(params: Mapping, grads: dict) -> dict:
    """``grads`` without the roles the layer does not have (its biases, when bias=False)."""
    return {role: grad for role, grad in grads.items() if role in params}
