"""rnnkit: recurrent neural networks in NumPy with hand-derived, exact BPTT."""

from rnnkit.nn import GRU, LSTM, RNN, GRUCell, LSTMCell, Module, RNNCell

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "Module", "RNN", "RNNCell"]
__version__ = "0.1.0"
