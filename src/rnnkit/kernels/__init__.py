"""The reference kernels: ``loop.run``, the time loop that runs any registered cell (forward and
backpropagation through time) in NumPy, and its helpers. Every back end is tested against it.
"""
