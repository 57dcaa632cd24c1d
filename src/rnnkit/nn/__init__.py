"""Layers with the ``(output, backward)`` contract (recurrent layers, cells and their base) and
the ragged-batch helpers of ``padding``."""

from rnnkit.nn.cells import GRUCell, LSTMCell, RecurrentCell, RNNCell
from rnnkit.nn.dropout import Dropout
from rnnkit.nn.embedding import Embedding
from rnnkit.nn.linear import Linear
from rnnkit.nn.module import Module
from rnnkit.nn.padding import from_packed, pad_sequence, to_packed_arrays, unpad_sequence
from rnnkit.nn.recurrent import GRU, LSTM, RNN, Recurrent
from rnnkit.nn.sequential import Sequential

__all__ = [
    "GRU",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "Dropout",
    "Embedding",
    "Linear",
    "Module",
    "RNN",
    "RNNCell",
    "Recurrent",
    "RecurrentCell",
    "Sequential",
    "from_packed",
    "pad_sequence",
    "to_packed_arrays",
    "unpad_sequence",
]
