"""A language model: Embedding -> recurrent stack -> Linear at every step (next-token logits).

Many-to-many, aligned: the output at step t predicts token t + 1. Trained by truncated BPTT over a
continuous stream, the state carried from one window to the next.
"""

from __future__ import annotations

import numpy as np

from rnnkit.nn.dropout import Dropout
from rnnkit.nn.embedding import Embedding
from rnnkit.nn.linear import Linear
from rnnkit.nn.module import Module
from rnnkit.nn.recurrent import GRU, LSTM, RNN

CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


class LanguageModel(Module):
    """Next-token model over a vocabulary of ``vocab_size`` tokens.

    Dropout (probability ``dropout``) acts on the embeddings, between recurrent layers, and on the
    last layer's output, in training only.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 2,
        cell: str = "lstm",
        dropout: float = 0.0,
        *,
        dtype="float32",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell={cell!r} is not one of {list(CELLS)}")
        rng = np.random.default_rng(seed)
        seeds = rng.integers(2**32, size=5)
        self.vocab_size, self.embedding_dim = vocab_size, embedding_dim
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.cell, self.dropout = cell, dropout
        self.embedding = self._add_child(
            "embedding", Embedding(vocab_size, embedding_dim, dtype=dtype, seed=seeds[0])
        )
        self.rnn = self._add_child(
            "rnn",
            CELLS[cell](
                embedding_dim, hidden_size, num_layers, dropout=dropout, dtype=dtype, seed=seeds[1]
            ),
        )
        self.head = self._add_child(
            "head", Linear(hidden_size, vocab_size, dtype=dtype, seed=seeds[2])
        )
        self.input_dropout = Dropout(dropout, seed=seeds[3])
        self.output_dropout = Dropout(dropout, seed=seeds[4])

    def config(self) -> dict:
        return {
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "cell": self.cell,
            "dropout": self.dropout,
            "dtype": self.dtype.name,
        }

    def __call__(self, ids: np.ndarray, state=None):
        """Inference: logits (T, B, vocab_size) for token ids (T, B), and the final state."""
        output, state = self.rnn(self.embedding(ids), state=state)
        return self.head(output), state

    def forward(self, ids: np.ndarray, state=None):
        """Training path: ``((logits, state), backward)``; ``backward(d_logits)`` accumulates the
        parameter gradients. The incoming state is a constant (truncated BPTT)."""
        vectors, embedding_backward = self.embedding.forward(ids)
        vectors, input_dropout_backward = self.input_dropout.forward(vectors)
        (output, state), rnn_backward = self.rnn.forward(vectors, state=state)
        output, output_dropout_backward = self.output_dropout.forward(output)
        logits, head_backward = self.head.forward(output)

        def backward(d_logits: np.ndarray) -> None:
            d_output = output_dropout_backward(head_backward(d_logits))
            d_vectors, _ = rnn_backward(d_output)
            embedding_backward(input_dropout_backward(d_vectors))

        return (logits, state), backward
