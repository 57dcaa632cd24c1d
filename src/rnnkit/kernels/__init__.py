"""Pure array functions over whole sequences, one module per cell: ``forward`` and ``backward``.

Every kernel has the same signature:

    forward(x, state0, w_ih, w_hh, b_ih, b_hh, lengths, **options) -> (y, state_n, cache)
    backward(dy, dstate_n, cache, dh_record=None) -> (dx, dxw, dstate0, dw_hh, db_ih, db_hh)

with x (T, B, I), weights (G*H, I) and (G*H, H), biases (G*H,) or None, and states as tuples of
(B, H) arrays. The kernel makes the input projection xw = x @ W_ih.T (T, B, G*H) itself: in one
product for all steps, or step by step inside a compiled loop (the LSTM's), and so dx; backward
also returns dxw, the gradient of that projection, from which the caller makes dW_ih. The bias
gradients db_ih and db_hh are (G*H,) each, or None for a layer without biases. Given a
(T, B, H) array ``dh_record``, backward also writes dL/dh[t] of every step into it (the
gradients it computes anyway, for ``rnnkit.diagnostics``); without it, it does no extra work.
``backward`` runs once per ``forward``: it may write over the cache (LSTM and GRU turn their
gates into dxw).

A kernel may also have ``infer(x, state0, w_ih, w_hh, b_ih, b_hh, lengths) -> (y, state_n) or
None``: inference without a cache (the LSTM's compiled loop); None sends the caller to
``forward``.
"""
