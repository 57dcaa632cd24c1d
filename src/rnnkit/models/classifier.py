"""Many-to-one classification: a sequence (text or numbers) -> scores for ``num_classes`` classes.

Encoder (embedding or features -> recurrent stack) -> pooling over the valid steps (final state,
mean or max) -> dropout -> Linear. Ragged batches are exact: a sequence's scores do not depend on
the padding next to it or on the other sequences of its batch.
"""

from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError
from rnnkit.io._schema import _shown
from rnnkit.models.encoder import SequenceEncoder
from rnnkit.models.pooling import POOLINGS, pool
from rnnkit.nn import _checks
from rnnkit.nn.dropout import Dropout
from rnnkit.nn.linear import Linear
from rnnkit.nn.module import Module


class SequenceClassifier(Module):
    """Class scores (logits) for each sequence of a batch.

    Args:
        num_classes: 2 or more.
        vocab_size / input_size: exactly one: token ids through an Embedding of ``embedding_dim``,
            or ``input_size`` numeric features per step.
        hidden_size, num_layers, cell ("rnn", "lstm", "gru"), bidirectional: the recurrent stack.
        pooling: "last", "mean" or "max" (see ``rnnkit.models.pooling``).
        dropout: on the embeddings, between recurrent layers and on the pooled vector (training).
        dtype: "float32" or "float64". seed: for the initial weights and dropout masks.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        vocab_size: int | None = None,
        input_size: int | None = None,
        embedding_dim: int = 64,
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: str = "gru",
        bidirectional: bool = False,
        pooling: str = "last",
        dropout: float = 0.0,
        dtype="float32",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise UserError(f"num_classes must be a whole number >= 2, got {_shown(num_classes)}")
        _checks.choice("SequenceClassifier", "pooling", pooling, POOLINGS)
        seeds = _checks.generator("SequenceClassifier", seed).integers(2**32, size=3)
        self.num_classes, self.pooling = num_classes, pooling
        self.encoder = self._add_child(
            "encoder",
            SequenceEncoder(
                vocab_size=vocab_size,
                input_size=input_size,
                embedding_dim=embedding_dim,
                hidden_size=hidden_size,
                num_layers=num_layers,
                cell=cell,
                bidirectional=bidirectional,
                dropout=dropout,
                dtype=dtype,
                seed=seeds[0],
            ),
        )
        self.dropout = Dropout(dropout, seed=seeds[1])
        self.head = self._add_child(
            "head", Linear(self.encoder.output_size, num_classes, dtype=dtype, seed=seeds[2])
        )
        self._config = {
            "num_classes": num_classes,
            "vocab_size": vocab_size,
            "input_size": input_size,
            "embedding_dim": embedding_dim,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "cell": cell,
            "bidirectional": bool(bidirectional),
            "pooling": pooling,
            "dropout": float(dropout),
        }

    def config(self) -> dict:
        return {**self._config, "dtype": self.dtype.name}

    def __call__(self, x, lengths=None) -> np.ndarray:
        """Inference: logits (B, num_classes) for ids (T, B) or features (T, B, input_size)."""
        output, last_h = self.encoder(x, lengths)
        pooled, _ = pool(output, last_h, lengths, self.pooling)
        return self.head(pooled)

    def forward(self, x, lengths=None):
        """Training path: ``(logits (B, num_classes), backward)``.

        ``backward(d_logits)`` accumulates the parameter gradients and returns the gradient with
        respect to numeric features (T, B, input_size), or None for token ids.
        """
        (output, last_h), encoder_backward = self.encoder.forward(x, lengths)
        pooled, pool_backward = pool(output, last_h, lengths, self.pooling)
        pooled, dropout_backward = self.dropout.forward(pooled)
        logits, head_backward = self.head.forward(pooled)

        def backward(d_logits):
            d_output, d_last_h = pool_backward(dropout_backward(head_backward(d_logits)))
            return encoder_backward(d_output, d_last_h)

        return logits, backward
