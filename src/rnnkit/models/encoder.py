"""Reading sequences: an input layer and a recurrent stack, the part the sequence models share.

Text comes as token ids (T, B) and goes through an Embedding; numeric sequences come as features
(T, B, input_size) and go to the recurrent stack as they are. Both are time-major and may be
ragged: right-padded, with ``lengths`` (B,).
"""

from __future__ import annotations

import numpy as np

from rnnkit import cells
from rnnkit.errors import UserError
from rnnkit.io._schema import _shown
from rnnkit.nn import _checks
from rnnkit.nn.dropout import Dropout
from rnnkit.nn.embedding import Embedding
from rnnkit.nn.module import Module
from rnnkit.nn.recurrent import Recurrent


def check_input_kind(owner: str, vocab_size, input_size) -> None:
    """ValueError unless exactly one of ``vocab_size`` (text) or ``input_size`` (numbers) is set."""
    if (vocab_size is None) == (input_size is None):
        raise UserError(
            f"{owner}: give exactly one of vocab_size (token ids through an embedding) and "
            f"input_size (numeric features), got vocab_size={_shown(vocab_size)}, "
            f"input_size={_shown(input_size)}"
        )


class SequenceEncoder(Module):
    """Token ids through an Embedding, or numeric features as they are, into ``num_layers``
    recurrent layers of ``cell`` (``"rnn"``, ``"lstm"``, ``"gru"``) with ``hidden_size`` units;
    bidirectional, the two directions' outputs are concatenated.

    Dropout (probability ``dropout``) acts on the embeddings and between recurrent layers, in
    training only. Give exactly one of ``vocab_size`` and ``input_size``.
    """

    def __init__(
        self,
        *,
        vocab_size: int | None = None,
        input_size: int | None = None,
        embedding_dim: int = 64,
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: str = "gru",
        bidirectional: bool = False,
        dropout: float = 0.0,
        dtype="float32",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        check_input_kind(name, vocab_size, input_size)
        _checks.choice(name, "cell", cell, cells.names())
        _checks.sizes(name, embedding_dim=embedding_dim, hidden_size=hidden_size,
                      num_layers=num_layers)  # fmt: skip
        _checks.probability(name, dropout=dropout)
        seeds = _checks.generator(name, seed).integers(2**32, size=3)
        self.embedding = None
        if vocab_size is not None:
            embedding = Embedding(vocab_size, embedding_dim, dtype=dtype, seed=seeds[0])
            self.embedding = self._add_child("embedding", embedding)
            input_size = embedding_dim
        between_layers = dropout if num_layers > 1 else 0.0  # one layer: nothing in between
        self.rnn = self._add_child(
            "rnn",
            Recurrent(
                cell,
                input_size,
                hidden_size,
                num_layers,
                dropout=between_layers,
                bidirectional=bidirectional,
                dtype=dtype,
                seed=seeds[1],
            ),
        )
        self.input_dropout = Dropout(dropout, seed=seeds[2])

    @property
    def output_size(self) -> int:
        """Features per step of the output: hidden_size times the number of directions."""
        return self.rnn.output_size

    def __call__(self, x, lengths=None):
        """Inference: ``(output (T, B, output_size), last_h (D, B, hidden_size))``."""
        inputs = x if self.embedding is None else self.embedding(x)
        output, state = self.rnn(inputs, lengths)
        return output, self._last_h(state)

    def forward(self, x, lengths=None):
        """Training path: ``((output, last_h), backward)``.

        Args:
            x: token ids (T, B) with an embedding, else features (T, B, input_size).
            lengths: (B,) ints in [1, T], or None when all sequences have T steps.
        Returns:
            output: (T, B, output_size), zero past each length;
            last_h: (D, B, hidden_size), the top layer's final hidden state per direction;
            backward(d_output, d_last_h=None) -> d_x: the gradient with respect to the features
                (None for token ids); parameter gradients accumulate.
        """
        embedding_backward = dropout_backward = None
        inputs = x
        if self.embedding is not None:
            vectors, embedding_backward = self.embedding.forward(x)
            inputs, dropout_backward = self.input_dropout.forward(vectors)
        (output, state), rnn_backward = self.rnn.forward(inputs, lengths)
        last_h = self._last_h(state)

        def backward(d_output, d_last_h=None):
            d_state = None
            if d_last_h is not None:
                d_h = np.zeros_like(self._h(state))  # (L*D, B, H)
                d_h[-len(last_h) :] = d_last_h
                d_state = (d_h, None) if isinstance(state, tuple) else d_h  # LSTM: no d_c
            d_inputs, _ = rnn_backward(d_output, d_state)
            if embedding_backward is None:
                return d_inputs
            embedding_backward(dropout_backward(d_inputs))
            return None

        return (output, last_h), backward

    @staticmethod
    def _h(state) -> np.ndarray:
        return state[0] if isinstance(state, tuple) else state  # LSTM: (h, c)

    def _last_h(self, state) -> np.ndarray:
        return self._h(state)[-self.rnn.directions :]  # (D, B, H): the top layer's directions
