"""rnnkit against PyTorch's CPU RNNs, side by side in the same run.

For every cell with a PyTorch twin (RNN tanh, LSTM, GRU; or the registered cells asked for:
one without a twin is timed alone) and shape (B, T, I, H) of the grid, it times inference
(calling the layer) and a training step (forward, a sum-of-outputs loss, backward) of rnnkit and of
``torch.nn``, each library in its own process, alternating call by call after a warm-up, and
reports medians, min-max, the ratio rnnkit / PyTorch and the GFLOP/s the matrix products reach
against the sgemm peak measured in the same run. Also a streaming step (``LSTMCell`` at B=1,
H=128), a bidirectional 2-layer LSTM, the peak resident memory of a training step at the largest
shape, and the start-up costs (``rnnkit --help``, and what the first training step of a process
pays to load compiled code), each in fresh processes.

    rnnkit bench                                    # the whole grid; prints a table
    rnnkit bench --quick --json out.json            # (or python benchmarks/speed.py ...)
    rnnkit bench --cell gru --cell lstm             # some registered cells only

Needs torch (``pip install torch==2.13.0``). Both libraries use the same number of threads.
"""
