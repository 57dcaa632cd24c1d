"""Pure array functions over whole sequences, one module per cell: ``forward`` and ``backward``.

Every kernel has the same signature:

    forward(xw, state0, w_hh, b_hh, lengths, **options) -> (y, state_n, cache)
    backward(dy, dstate_n, cache) -> (dxw, dstate0, dw_hh, db_hh)

with ``xw`` the input projection (T, B, G*H) and states as tuples of (B, H) arrays.
"""
