"""The cell registry: every recurrent cell rnnkit knows, by name.

Each cell is one file of this package (its equations, its ``step`` and ``step_backward``, and
the ``Cell`` record saying what it is); registering it is one line below. Layers, models, the
CLI's ``--cell`` choices, diagnostics, initialisation, checks, the model files and the benchmark
all read what a cell is from here.
"""

from __future__ import annotations

from rnnkit.cells import gru, gru_reset_before, layer_norm_gru, layer_norm_lstm, lstm, rnn
from rnnkit.cells._cell import Cell
from rnnkit.errors import UserError

_REGISTRY: dict[str, Cell] = {}


def register(cell: Cell) -> Cell:
    """Add ``cell`` to the registry under ``cell.name`` (a UserError if the name is taken)."""
    if cell.name in _REGISTRY:
        raise UserError(f"a cell named {cell.name!r} is already registered; pick another name")
    _REGISTRY[cell.name] = cell
    return cell


def names() -> tuple[str, ...]:
    """The registered cells' names, in registration order."""
    return tuple(_REGISTRY)


def get(name) -> Cell:
    """The cell registered as ``name``; a one-line UserError naming the choices otherwise."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise UserError(f"cell={name!r} is not one of {list(_REGISTRY)} (the registered cells)")
    return _REGISTRY[name]


register(rnn.CELL)
register(lstm.CELL)
register(gru.CELL)
register(layer_norm_gru.CELL)
register(layer_norm_lstm.CELL)
register(gru_reset_before.CELL)

__all__ = ["Cell", "get", "names", "register"]
