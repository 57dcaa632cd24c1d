"""Pure array functions over whole sequences, one module per cell: ``forward`` and ``backward``.

Every kernel has the same signature:

    forward(xw, state0, w_hh, b_hh, lengths, b_ih=None, **options) -> (y, state_n, cache)
    backward(dy, dstate_n, cache, dh_record=None) -> (dxw, dstate0, dw_hh, db_ih, db_hh)

with ``xw`` the input projection x @ W_ih.T (T, B, G*H), to which the kernel adds the input bias
``b_ih`` (G*H,) when given (the compiled loops add it in each step's gate math, as they read xw:
no pass of its own), and states as tuples of (B, H) arrays. The bias gradients db_ih and db_hh
are (G*H,) each, or None for a layer without biases. Given a (T, B, H) array
``dh_record``, backward also writes dL/dh[t] of every step into it (the gradients it computes
anyway, for ``rnnkit.diagnostics``); without it, it does no extra work. ``backward`` runs once
per ``forward``: it may write over the cache (LSTM and GRU turn their gates into dxw).

A kernel may also have ``infer(x, state0, w_ih, w_hh, b_ih, b_hh, lengths) -> (y, state_n) or
None``: inference without a cache, input projection included (the LSTM's compiled loop); None
sends the caller to ``forward``.
"""
