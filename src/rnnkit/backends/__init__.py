"""Back ends: what runs a recurrent layer's time loop, chosen explicitly.

- ``"numpy"``: the reference loop (``rnnkit.kernels.loop``): every cell, every dtype.
- ``"compiled"``: numba's compiled float32 time loops (``rnnkit.backends.compiled``) for the
  cells that have one, compiled steps in the reference loop for the others; asking for it where
  it cannot run (float64, numba absent) is a UserError that says why.
- ``"auto"``: the compiled back end where it can run, the reference loop otherwise.

A layer or cell built with ``backend=None`` (the default) uses the process-wide default:
``set_default_backend(name)``, else the environment variable ``RNNKIT_BACKEND`` (read at the
first choice, not at import; ``set_default_backend(None)`` reads it again), else ``"auto"``.
``backend_info(layer)`` says which one runs and why.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from rnnkit.backends import compiled
from rnnkit.errors import UserError
from rnnkit.kernels import loop

BACKENDS = ("auto", "numpy", "compiled")
_default: str | None = None  # set_default_backend's choice; None: RNNKIT_BACKEND, else "auto"
_from_environment: str | None = None  # RNNKIT_BACKEND's value, once read (a streaming step
# chooses at every step, and reading the environment each time is a noticeable part of a step)


class Choice(NamedTuple):
    """The back end that runs (``"numpy"`` or ``"compiled"``) and why, in a few words."""

    name: str
    why: str


def check_backend(owner: str, backend) -> None:
    """A one-line UserError unless ``backend`` is None or one of BACKENDS."""
    if backend is not None and backend not in BACKENDS:
        raise UserError(f"{owner}: backend={backend!r} is not one of {list(BACKENDS)} (or None)")


def set_default_backend(backend: str | None) -> None:
    """Set the process-wide back end of layers and cells built with ``backend=None``; None
    goes back to ``RNNKIT_BACKEND``, else ``"auto"``."""
    global _default, _from_environment
    check_backend("set_default_backend", backend)
    _default, _from_environment = backend, None


def default_backend() -> str:
    """The process-wide default back end (see the module docstring)."""
    global _from_environment
    if _default is not None:
        return _default
    if _from_environment is None:
        backend = os.environ.get("RNNKIT_BACKEND", "auto")
        if backend not in BACKENDS:
            raise UserError(
                f"the environment variable RNNKIT_BACKEND={backend!r} is not one of "
                f"{list(BACKENDS)}; set it to one of them or unset it"
            )
        _from_environment = backend
    return _from_environment


def choose(owner: str, backend: str | None, cell, options: dict, dtype: np.dtype) -> Choice:
    """The back end that runs ``cell`` for ``owner`` (a layer's name, for errors) asked for
    ``backend`` (None: the process default) on data of ``dtype``."""
    requested = default_backend() if backend is None else backend
    if requested == "numpy":
        return Choice("numpy", "asked for" if backend else "the process default")
    reason = compiled.unsupported(cell, options, dtype)
    if requested == "compiled":
        if reason is not None:
            raise UserError(
                f"{owner}: backend='compiled' cannot run here: {reason}; "
                "use backend='numpy' or 'auto'"
            )
        return Choice("compiled", "asked for" if backend else "the process default")
    if reason is None:
        return Choice("compiled", f"auto: {compiled.method(cell, options)}")
    return Choice("numpy", f"auto: the compiled back end cannot run: {reason}")


def run_direction(choice: Choice, cell, options, x, params, state0, lengths, training):
    """One direction of one layer on the chosen back end: see ``rnnkit.kernels.loop.run``."""
    runner = compiled.run if choice.name == "compiled" else loop.run
    return runner(cell, options, x, params, state0, lengths, training)


def run_together(choice: Choice, first, second) -> tuple:
    """``(first(), second())``: side by side in two threads on the compiled back end (its
    loops release the GIL), one after the other on the reference loop."""
    if choice.name == "compiled":
        return compiled._fused.run_together(first, second, np.float32)
    return first(), second()


def backend_info(module) -> dict:
    """Which back end runs ``module`` (a recurrent layer or cell, e.g. ``rnnkit.LSTM``) now and
    why: ``{"cell", "requested", "backend", "why", "products"}``; ``products`` says how the
    compiled loops make their matrix products (None on the reference loop)."""
    if not hasattr(module, "backend_choice"):
        raise UserError(
            f"backend_info takes a recurrent layer or cell (rnnkit.LSTM, rnnkit.GRUCell ...), "
            f"not {type(module).__name__}; pass one of its layers"
        )
    choice = module.backend_choice()
    return {
        "cell": module.cell.name,
        "requested": module.backend or f"{default_backend()} (the process default)",
        "backend": choice.name,
        "why": choice.why,
        "products": compiled._fused.product_path() if choice.name == "compiled" else None,
    }
