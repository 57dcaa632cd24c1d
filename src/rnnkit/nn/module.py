"""The base of every layer: parameters, their gradients, and the forward/backward contract.

A module holds two dicts of NumPy arrays with the same keys:

- ``params``: the parameters, updated in place by optimizers;
- ``grads``: the gradients, accumulated by ``backward`` (``+=``) until ``zero_grad``.

A composite module adds its parts with ``_add_child("rnn", layer)``: their arrays then also appear
in the composite's dicts under prefixed names (``rnn.weight_ih_l0``), the *same* array objects, so
an update through either dict is seen by both. Arrays are therefore only ever changed in place.

``config()`` returns the constructor's arguments as JSON-able values, so that a saved model can be
rebuilt from its file without running code stored in it.

Every module that adds parameters calls ``reserve`` first, with their count worked out from its
arguments: sizes too large for the machine, or larger than the model file being loaded holds
(``parameter_budget``), are refused before anything is allocated.

``module.forward(...)`` is the training path: it returns ``(output, backward)``, where the cache
that ``backward`` needs lives in the closure, never on the module, so a module may run forward
several times before any backward. Calling the module is the inference path: the same numbers,
nothing kept for backward, no dropout.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

from rnnkit._memory import check_fits, format_bytes
from rnnkit.errors import UserError


class Budget:
    """The bytes of parameters that the modules built while loading one model file may hold."""

    def __init__(self, total: int) -> None:
        self.total, self.used = total, 0


_budget: ContextVar[Budget | None] = ContextVar("rnnkit_parameter_budget", default=None)


@contextmanager
def parameter_budget(total: int) -> Iterator[Budget]:
    """Within the block, the modules built may reserve at most ``total`` bytes of parameters.

    A model file holds every parameter of the model its config describes, in the model's dtype,
    so a config that asks for more than the ``total`` bytes of the file's tensors is damaged:
    ``reserve`` refuses it before the arrays exist. Yields the budget, whose ``used`` counts
    the bytes reserved so far.
    """
    budget = Budget(total)
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


def reserve(count: int, dtype: np.dtype, what: str) -> None:
    """Refuse ``count`` parameters of ``dtype``, before they are allocated, when they exceed the
    budget of the model file being loaded (see ``parameter_budget``) or the memory of the
    process. Every module that adds parameters calls this first; ``what`` names it.

    The memory estimate counts the parameters, their gradients, and the float64 values that the
    initialisation draws before casting them.
    """
    budget = _budget.get()
    if budget is not None:
        budget.used += count * dtype.itemsize
        if budget.used > budget.total:
            raise UserError(
                f"{what} needs {amount(count)} {dtype.name} parameters, which would bring the "
                f"model to {format_bytes(budget.used)}, more than the "
                f"{format_bytes(budget.total)} of tensors the model file holds"
            )
    nbytes = count * (2 * dtype.itemsize + 8)
    check_fits(nbytes, f"{what}'s {amount(count)} parameters", "use smaller sizes")


def amount(count: int) -> str:
    """A count for a message: ``1,234,567``, or ``about 10^42`` when it is too long to show."""
    if count < 10**15:
        return f"{count:,}"
    return f"about 10^{math.floor(math.log10(count))}"  # str() refuses over 4300 digits


class Module:
    """Base class: ``params`` and ``grads`` dicts keyed with PyTorch's state_dict names."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def _add_param(self, name: str, value: np.ndarray) -> None:
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)

    def _add_child(self, name: str, child: Module) -> Module:
        """Make ``child`` a part of this module: its arrays join ours as ``name.key``."""
        for key, value in child.params.items():
            self.params[f"{name}.{key}"] = value
            self.grads[f"{name}.{key}"] = child.grads[key]
        return child

    def generators(self, prefix: str = "") -> dict[str, np.random.Generator]:
        """Every random generator this module and the modules it holds use, by attribute path.

        Checkpoints save their states so that a resumed run draws the same dropout masks.
        """
        found = {}
        for name, value in vars(self).items():
            if isinstance(value, np.random.Generator):
                found[prefix + name] = value
            elif isinstance(value, Module):
                found.update(value.generators(f"{prefix}{name}."))
        return found

    def config(self) -> dict:
        """The constructor arguments that rebuild this module (JSON-able values)."""
        raise NotImplementedError(f"{type(self).__name__} does not define config()")

    @property
    def dtype(self) -> np.dtype | None:
        """The floating dtype of the parameters (float32 unless asked otherwise); None for a
        module without parameters (``Dropout``), which keeps its input's dtype."""
        return next((value.dtype for value in self.params.values()), None)

    def zero_grad(self) -> None:
        """Set every accumulated gradient to zero."""
        for grad in self.grads.values():
            grad.fill(0.0)

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of the parameters, keyed as PyTorch keys the same module's state_dict."""
        return {name: value.copy() for name, value in self.params.items()}

    def load_state_dict(self, state: dict) -> None:
        """Copy parameters in from NumPy arrays or torch tensors with PyTorch's key names.

        Every key must be present with the right shape; values are cast to this module's dtype.
        """
        missing = sorted(set(self.params) - set(state))
        unexpected = sorted(set(state) - set(self.params))
        if missing or unexpected:
            raise UserError(
                f"state_dict keys do not match {type(self).__name__}: missing {missing}, "
                f"unexpected {unexpected}; build the module with the same sizes and options "
                "as the one that produced the state_dict"
            )
        arrays = {name: _to_numpy(value) for name, value in state.items()}
        for name, value in arrays.items():
            expected = self.params[name].shape
            if value.shape != expected:
                raise UserError(
                    f"state_dict['{name}'] has shape {value.shape}, but {type(self).__name__} "
                    f"expects {expected}; build the module with the sizes the weights were made for"
                )
            if not np.all(np.isfinite(value)):
                raise UserError(
                    f"state_dict['{name}'] holds NaN or inf values; load finite weights"
                )
        for name, value in arrays.items():
            self.params[name][...] = value


def single_use(backward):
    """``backward`` that refuses a second call: gradients would silently count twice."""
    used = False

    def once(*args, **kwargs):
        nonlocal used
        if used:
            raise RuntimeError("backward was already called for this forward; run forward again")
        used = True
        return backward(*args, **kwargs)

    return once


def _to_numpy(value) -> np.ndarray:
    """A NumPy array from an array-like or a (possibly grad-tracking) torch tensor."""
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)
