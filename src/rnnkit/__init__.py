"""rnnkit: recurrent neural networks in NumPy with hand-derived, exact BPTT."""

from rnnkit._environment import tune_process
from rnnkit.backends import backend_info, set_default_backend
from rnnkit.errors import UserError, UserTypeError
from rnnkit.export import export_onnx  # imports onnx only when called
from rnnkit.io.models import load, register, save
from rnnkit.nn import (
    GRU,
    LSTM,
    RNN,
    Dropout,
    Embedding,
    GRUCell,
    Linear,
    LSTMCell,
    Module,
    Recurrent,
    RecurrentCell,
    RNNCell,
    Sequential,
    from_packed,
    pad_sequence,
    to_packed_arrays,
    unpad_sequence,
)

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Dropout",
    "Embedding",
    "GRUCell",
    "LSTMCell",
    "Linear",
    "Module",
    "RNNCell",
    "Recurrent",
    "RecurrentCell",
    "Sequential",
    "UserError",
    "UserTypeError",
    "backend_info",
    "export_onnx",
    "from_packed",
    "load",
    "pad_sequence",
    "register",
    "save",
    "set_default_backend",
    "to_packed_arrays",
    "tune_process",
    "unpad_sequence",
]
__version__ = "0.1.0"
