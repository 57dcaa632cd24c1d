"""Many-to-many, aligned: an output at every step of a sequence (text or numbers).

Encoder (embedding or features -> recurrent stack) -> dropout -> Linear at every step. The outputs
are values for regression (train with ``mse`` or ``mae``) or class scores for tagging (train with
``cross_entropy``); pass the mask of valid steps to the loss for ragged batches.
"""

from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError
from rnnkit.io._schema import _shown
from rnnkit.models.encoder import SequenceEncoder
from rnnkit.models.pooling import valid_steps
from rnnkit.nn import _checks
from rnnkit.nn.dropout import Dropout
from rnnkit.nn.linear import Linear
from rnnkit.nn.module import Module


class SequenceRegressor(Module):
    """``output_size`` values per step; zero past each sequence's length.

    Args as ``SequenceClassifier`` (without ``pooling``); ``output_size`` >= 1 replaces
    ``num_classes``. Dropout acts on the embeddings, between recurrent layers and on the
    per-step outputs of the recurrent stack.
    """

    def __init__(
        self,
        output_size: int,
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
        if isinstance(output_size, bool) or not isinstance(output_size, int) or output_size < 1:
            raise UserError(f"output_size must be a whole number >= 1, got {_shown(output_size)}")
        seeds = _checks.generator("SequenceRegressor", seed).integers(2**32, size=3)
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
            "head", Linear(self.encoder.output_size, output_size, dtype=dtype, seed=seeds[2])
        )
        self._config = {
            "output_size": output_size,
            "vocab_size": vocab_size,
            "input_size": input_size,
            "embedding_dim": embedding_dim,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "cell": cell,
            "bidirectional": bool(bidirectional),
            "dropout": float(dropout),
        }

    def config(self) -> dict:
        return {**self._config, "dtype": self.dtype.name}

    def __call__(self, x, lengths=None) -> np.ndarray:
        """Inference: outputs (T, B, output_size) for ids (T, B) or features (T, B, input_size)."""
        output, _ = self.encoder(x, lengths)
        return self.head(output) * self._valid(output, lengths)

    def forward(self, x, lengths=None):
        """Training path: ``(y (T, B, output_size), backward)``; ``backward(dy)`` accumulates the
        parameter gradients and returns d(features) (T, B, input_size), or None for token ids."""
        (output, _), encoder_backward = self.encoder.forward(x, lengths)
        dropped, dropout_backward = self.dropout.forward(output)
        y, head_backward = self.head.forward(dropped)
        valid = self._valid(output, lengths)

        def backward(dy):
            d_output = dropout_backward(head_backward(dy * valid))  # padding gets no gradient
            return encoder_backward(d_output)

        return y * valid, backward

    @staticmethod
    def _valid(output: np.ndarray, lengths) -> np.ndarray:
        steps, batch, _ = output.shape
        return valid_steps(lengths, steps, batch)[:, :, None].astype(output.dtype)  # (T, B, 1)
