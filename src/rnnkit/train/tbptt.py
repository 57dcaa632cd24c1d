"""Truncated backpropagation through time over a batch of whole sequences.

The sequences (T steps) are cut into windows of ``k`` steps, the last one maybe shorter. Each
window runs forward from the final state of the window before it, its loss is backpropagated
within the window only, and the parameter gradients of all windows accumulate. The state handed
across a boundary is a constant: no gradient flows from one window into the one before it.
With ``k >= T`` there is a single window, which is full backpropagation through time.
"""

from __future__ import annotations

import numbers

from rnnkit.errors import UserError


def windows(steps: int, k: int) -> list[slice]:
    """The windows of ``k`` steps that cover ``steps`` steps: [0, k), [k, 2k), ..., the last one
    ending at ``steps`` (shorter when ``k`` does not divide ``steps``); empty for 0 steps."""
    for name, value, low in (("steps", steps, 0), ("k", k, 1)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise UserError(f"truncated BPTT: {name} must be an int >= {low}, got {value!r}")
    return [slice(start, min(start + k, steps)) for start in range(0, steps, k)]


def truncated_bptt(forward, loss, inputs, targets, k: int, state=None):
    """Forward, loss and backward window by window; parameter gradients accumulate.

    Args:
        forward: ``forward(x_window, state) -> ((y, state_out), backward)``, the training path of
            a model (e.g. ``LanguageModel.forward``); ``backward(d_y)`` accumulates the
            parameter gradients (whatever it returns is ignored).
        loss: ``loss(y, targets_window) -> (value, d_y)``, e.g. ``losses.cross_entropy``.
        inputs: (T, B, ...) time-major, e.g. token ids (T, B) or features (T, B, I).
        targets: (T, ...) time-major, aligned with ``inputs`` step by step.
        k: steps per window (``k >= T``: full BPTT).
        state: the initial state (``h`` or ``(h, c)``), None for the model's zeros.
    Returns:
        total_loss: the sum of the windows' loss values (a float);
        final_state: the state after the last step, ready to carry into what follows.
    """
    if len(inputs) != len(targets):
        raise UserError(
            f"inputs have {len(inputs)} steps but targets have {len(targets)}; truncated BPTT "
            "needs time-major arrays with one target per input step"
        )
    if len(inputs) == 0:
        raise UserError("inputs have 0 steps; give sequences of at least one step")
    total = 0.0
    for window in windows(len(inputs), k):
        (y, state), backward = forward(inputs[window], state)  # y: (k, B, ...)
        value, d_y = loss(y, targets[window])
        backward(d_y)
        total += float(value)
    return total, state
