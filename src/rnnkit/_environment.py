"""Settings that must be made before NumPy loads its OpenBLAS: ``import rnnkit`` imports this
first.

``OPENBLAS_THREAD_TIMEOUT=4`` (unless already set): after each product, OpenBLAS's idle threads
spin for about 2**28 cycles (0.1 s here) before they sleep, taking a core from the two threads
of the compiled time loops (``kernels._fused.by_rows``); with 4 they sleep at once. Measured
here: an LSTM's forward loop at (32, 200, 256, 512) right after a product, 120-128 ms against
77-81 ms. Set before NumPy is imported, or it has no effect.
"""

import os

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
