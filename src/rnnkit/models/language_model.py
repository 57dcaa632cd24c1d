"""A language model: Embedding -> recurrent stack -> Linear at every step (next-token logits).

Many-to-many, aligned: the output at step t predicts token t + 1. Trained by truncated BPTT over a
continuous stream, the state carried from one window to the next.

Weight tying (Press & Wolf 2017, "Using the Output Embedding to Improve Language Models"; PyTorch's
``decoder.weight = encoder.weight``): the output layer's weight is the embedding matrix itself. The
matrix appears once among the parameters (``embedding.weight``); the output layer only owns its
bias (``head.bias``) and adds its share of the matrix's gradient to the embedding's.
"""

from __future__ import annotations

import numpy as np

from rnnkit import cells
from rnnkit.errors import UserError
from rnnkit.nn import _checks
from rnnkit.nn.dropout import Dropout
from rnnkit.nn.embedding import Embedding
from rnnkit.nn.linear import Linear
from rnnkit.nn.module import Module, reserve
from rnnkit.nn.recurrent import Recurrent


class TiedOutput(Module):
    """The output layer of a tied model: logits = h @ E.T + bias, E the embedding matrix (V, H).

    Parameter ``bias`` (V,), drawn from U(-1/sqrt(H), 1/sqrt(H)) as ``Linear``'s is. E belongs to
    ``embedding``; the gradient of E from this layer accumulates in ``embedding.grads['weight']``.
    Input (..., H) -> logits (..., V).
    """

    def __init__(self, embedding: Embedding, *, seed: int | None = None) -> None:
        super().__init__()
        weight = embedding.params["weight"]
        reserve(embedding.num_embeddings, weight.dtype, "the tied output layer")
        self.embedding = embedding
        bound = 1.0 / np.sqrt(embedding.embedding_dim)
        bias = np.random.default_rng(seed).uniform(-bound, bound, embedding.num_embeddings)
        self._add_param("bias", bias.astype(weight.dtype))

    def __call__(self, h: np.ndarray) -> np.ndarray:
        """Inference: logits (..., V) for hidden states (..., H)."""
        logits, _ = self.forward(h)
        return logits

    def forward(self, h: np.ndarray):
        """Training path: ``(logits, backward)``; ``backward(d_logits) -> d_h``."""
        weight, bias = self.embedding.params["weight"], self.params["bias"]
        vocab_size, hidden_size = weight.shape
        h_rows = h.reshape(-1, hidden_size)  # (N, H): N = product of the leading axes
        logits = (h_rows @ weight.T + bias).reshape(*h.shape[:-1], vocab_size)  # (..., V)

        def backward(d_logits: np.ndarray) -> np.ndarray:
            d_rows = d_logits.reshape(-1, vocab_size)  # (N, V)
            self.embedding.grads["weight"] += d_rows.T @ h_rows  # (V, H): the tied matrix
            self.grads["bias"] += d_rows.sum(axis=0)
            return (d_rows @ weight).reshape(h.shape)  # (N, H) -> (..., H)

        return logits, backward


class LanguageModel(Module):
    """Next-token model over a vocabulary of ``vocab_size`` tokens.

    Dropout (probability ``dropout``) acts on the embeddings, between recurrent layers, and on the
    last layer's output, in training only.

    ``tie_weights``: the output layer uses the embedding matrix as its weight (needs
    ``embedding_dim == hidden_size``; ``vocab_size * hidden_size`` fewer parameters). The shared
    matrix is then drawn as an output layer's weight is, U(-1/sqrt(H), 1/sqrt(H)): the logits are
    its products with the hidden state, which N(0, 1) entries would make sqrt(3H) times larger.
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
        tie_weights: bool = False,
        dtype="float32",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        name = "LanguageModel"
        _checks.choice(name, "cell", cell, cells.names())
        _checks.sizes(name, vocab_size=vocab_size, embedding_dim=embedding_dim,
                      hidden_size=hidden_size, num_layers=num_layers)  # fmt: skip
        _checks.probability(name, dropout=dropout)
        _checks.flags(name, tie_weights=tie_weights)
        if tie_weights and embedding_dim != hidden_size:
            raise UserError(
                f"tie_weights needs embedding_dim == hidden_size (the output layer uses the "
                f"embedding matrix), got {embedding_dim} and {hidden_size}; make them equal"
            )
        rng = _checks.generator(name, seed)
        seeds = rng.integers(2**32, size=5)
        self.vocab_size, self.embedding_dim = vocab_size, embedding_dim
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.cell, self.dropout, self.tie_weights = cell, dropout, bool(tie_weights)
        self.embedding = self._add_child(
            "embedding", Embedding(vocab_size, embedding_dim, dtype=dtype, seed=seeds[0])
        )
        self.rnn = self._add_child(
            "rnn",
            Recurrent(
                cell,
                embedding_dim,
                hidden_size,
                num_layers,
                dropout=dropout,
                dtype=dtype,
                seed=seeds[1],
            ),
        )
        if self.tie_weights:
            shared, head_rng = self.embedding.params["weight"], np.random.default_rng(seeds[2])
            bound = 1.0 / np.sqrt(hidden_size)
            shared[...] = head_rng.uniform(-bound, bound, shared.shape)
            head = TiedOutput(self.embedding, seed=head_rng.integers(2**32))
        else:
            head = Linear(hidden_size, vocab_size, dtype=dtype, seed=seeds[2])
        self.head = self._add_child("head", head)
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
            "tie_weights": self.tie_weights,
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
