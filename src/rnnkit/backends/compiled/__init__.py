"""The compiled back end, float32: numba time loops for the cells that have one (RNN, LSTM, GRU),
and compiled steps in the reference loop for the others (``stepped``).

Each time loop runs a whole sequence in one compiled call, the products included (``_packed``),
and from 16 sequences up as two halves side by side (``_fused.by_rows``). Loops and steps compute
what the reference loop (``rnnkit.kernels.loop``) computes with the cells' own steps, and are
tested against it. ``run`` has the reference loop's signature.
"""

from __future__ import annotations

import numpy as np

from rnnkit.backends.compiled import _fused, gru, lstm, rnn, stepped

KERNELS = {"rnn": rnn, "lstm": lstm, "gru": gru}  # cell name -> its compiled time loops
STEPS = {"lstm": "lstm_cell", "gru": "gru_cell"}  # cell name -> its compiled streaming step


def unsupported(cell, options, dtype: np.dtype) -> str | None:
    """Why the compiled back end cannot run ``cell`` on data of ``dtype`` in this process, or
    None."""
    problem = _fused.availability()
    if problem is not None:
        return problem
    if np.dtype(dtype) != np.float32:
        return f"it runs float32 only, and the layer is {np.dtype(dtype).name}"
    if _has_loop(cell, options) or cell.name in stepped.STEPS:
        return None
    if cell.name not in KERNELS:
        return f"it has no time loop or step for the {cell.name} cell"
    return _unsupported_option(cell, options, KERNELS[cell.name].OPTIONS)


def _has_loop(cell, options) -> bool:
    """Whether a compiled time loop runs ``cell`` with ``options`` (else its compiled step)."""
    kernel = KERNELS.get(cell.name)
    return kernel is not None and _unsupported_option(cell, options, kernel.OPTIONS) is None


def method(cell, options) -> str:
    """How the compiled back end runs ``cell`` with ``options``, in a few words."""
    if _has_loop(cell, options):
        return f"numba's float32 time loop for the {cell.name} cell"
    return f"the reference loop over numba's float32 {cell.name} step"


def _unsupported_option(cell, options, supported: dict) -> str | None:
    """Why the loops cannot run ``cell`` with ``options``, or None: a kernel module declares in
    ``OPTIONS`` ({name: values}) the cell's options its loops take and the values they run;
    any other option runs at the cell's default only (an option a cell gains later is thus
    refused here until its loops learn it)."""
    for name, value in options.items():
        values = supported.get(name, (cell.options[name],))
        if value not in values:
            shown = " or ".join(f"{name}={allowed!r}" for allowed in values)
            return f"its {cell.name} loop runs {shown} only, not {name}={value!r}"
    return None


def run(cell, options, x, params, state0, lengths, training):
    """As ``rnnkit.kernels.loop.run``, through the cell's compiled time loops or steps."""
    if not _has_loop(cell, options):
        return stepped.run(cell, options, x, params, state0, lengths, training)
    kernel = KERNELS[cell.name]
    steps, batch, inputs = x.shape
    x = np.ascontiguousarray(x)  # the loops read x[t] and the states in rows
    state0 = tuple(np.ascontiguousarray(part) for part in state0)
    weights = tuple(params.get(role) for role in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    taken = {name: options[name] for name in kernel.OPTIONS}  # the options the loops take
    if not training and hasattr(kernel, "infer"):
        return (*kernel.infer(x, state0, *weights, lengths, **taken), None)
    y, state, cache = kernel.forward(x, state0, *weights, lengths, **taken)
    if not training:
        return y, state, None

    def backward(dy, d_state, dh_record=None):
        dx, dxw, d_state0, dw_hh, db_ih, db_hh = kernel.backward(dy, d_state, cache, dh_record)
        rows = dxw.reshape(steps * batch, -1)  # (T*B, G*H)
        grads = {"weight_ih": rows.T @ x.reshape(steps * batch, inputs), "weight_hh": dw_hh}
        if db_ih is not None:
            grads |= {"bias_ih": db_ih, "bias_hh": db_hh}
        return dx, d_state0, grads

    return y, state, backward


def step(cell, x, state, params):
    """One streaming step without a cache: the new state tuple from the cell's compiled step,
    or None (the caller takes its checked path, which names any problem) unless x (B, I) and
    the state parts (B, H) are C-ordered float32 arrays of matching shapes with finite values.
    The compiled step checks types (its signature), shapes and values itself, so a stream of
    single examples pays little per step. The caller has chosen this back end (it can run)."""
    name = STEPS.get(cell.name)
    if name is None:
        return None
    weight_ih, weight_hh = params["weight_ih"], params["weight_hh"]
    if "bias_ih" in params:
        biases = (params["bias_ih"], params["bias_hh"])
    else:
        biases = (np.zeros(weight_hh.shape[0], np.float32),) * 2  # (G*H,): no biases
    try:
        h = np.empty((x.shape[0], state[0].shape[1]), np.float32)
    except (AttributeError, IndexError):  # a part that is no (B, H) array
        return None
    new_state = (h,) if len(state) == 1 else (h, np.empty_like(h))  # (h,) or (h, c)
    compiled_step = _fused._imported_loops().cell_step(name)
    try:
        done = compiled_step(x, *state, weight_ih, weight_hh, *biases, *new_state)
    except TypeError:  # not float32 C-ordered arrays: no signature of the step matches
        return None
    return new_state if done else None
