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

from rnnkit.diagnostics.diagnosis import (
    describe,
    diagnose_fresh,
    diagnose_language_model,
    verdict,
)
from rnnkit.diagnostics.flow import (
    gradient_flow,
    recording_hidden_gradients,
    recurrent_layers,
    step_jacobian_norms,
)
from rnnkit.diagnostics.plot import plot_grad_norms

__all__ = [
    "describe",
    "diagnose_fresh",
    "diagnose_language_model",
    "gradient_flow",
    "plot_grad_norms",
    "recording_hidden_gradients",
    "recurrent_layers",
    "step_jacobian_norms",
    "verdict",
]
