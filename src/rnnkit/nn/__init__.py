"""Layers with the ``(output, backward)`` contract: recurrent layers, cells and their base."""

from rnnkit.nn.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.nn.module import Module
from rnnkit.nn.recurrent import GRU, LSTM, RNN

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "Module", "RNN", "RNNCell"]
