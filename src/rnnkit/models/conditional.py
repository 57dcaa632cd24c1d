"""One to many: a vector sets the initial state of a recurrent generator of tokens.

    h_0 = tanh(W_b v + b_b)                       (B, H); an LSTM's c_0 is zero
    inputs = [start, y_0, ..., y_{T-2}]           teacher forcing: the true previous tokens
    h_1..h_T = rnn(E inputs, h_0)                 (T, B, H)
    logits_t = W_o h_t + b_o                      (T, B, V), predicting y_t

The target (T, B) ends each sequence with ``end_id``; padding after it is masked in the loss
(the model is causal, so padding never changes an earlier step). Generation feeds back the model's
own tokens, greedily or sampled.
"""

from __future__ import annotations

import numpy as np

from rnnkit import cells
from rnnkit.errors import UserError
from rnnkit.models.sampling import next_token
from rnnkit.nn import _checks
from rnnkit.nn.embedding import Embedding
from rnnkit.nn.linear import Linear
from rnnkit.nn.module import Module, single_use
from rnnkit.nn.recurrent import Recurrent


class ConditionalGenerator(Module):
    """Vector (B, input_size) -> token sequence; see the module docstring.

    Args:
        input_size: features of the conditioning vector. vocab_size: tokens.
        start_id, end_id: the first input token, and the token that ends a sequence.
        embedding_dim, hidden_size, num_layers, cell ("rnn", "lstm", "gru"), dtype, seed.
    """

    def __init__(
        self,
        input_size: int,
        vocab_size: int,
        start_id: int,
        end_id: int,
        embedding_dim: int = 32,
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: str = "gru",
        *,
        dtype="float32",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        name = "ConditionalGenerator"
        _checks.choice(name, "cell", cell, cells.names())
        _checks.sizes(
            name, input_size=input_size, vocab_size=vocab_size,
            embedding_dim=embedding_dim, hidden_size=hidden_size, num_layers=num_layers,
        )  # fmt: skip
        _checks.token_ids(name, vocab_size, start_id=start_id, end_id=end_id)
        self.input_size, self.vocab_size = input_size, vocab_size
        self.start_id, self.end_id = start_id, end_id
        self.embedding_dim, self.hidden_size = embedding_dim, hidden_size
        self.num_layers, self.cell = num_layers, cell
        seeds = _checks.generator(name, seed).integers(2**32, size=4)
        self.bridge = self._add_child(
            "bridge", Linear(input_size, hidden_size * num_layers, dtype=dtype, seed=seeds[0])
        )
        self.embedding = self._add_child(
            "embedding", Embedding(vocab_size, embedding_dim, dtype=dtype, seed=seeds[1])
        )
        self.rnn = self._add_child(
            "rnn",
            Recurrent(cell, embedding_dim, hidden_size, num_layers, dtype=dtype, seed=seeds[2]),
        )
        self.head = self._add_child(
            "head", Linear(hidden_size, vocab_size, dtype=dtype, seed=seeds[3])
        )

    def config(self) -> dict:
        return {
            "input_size": self.input_size,
            "vocab_size": self.vocab_size,
            "start_id": self.start_id,
            "end_id": self.end_id,
            "embedding_dim": self.embedding_dim,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "cell": self.cell,
            "dtype": self.dtype.name,
        }

    def _initial_state(self, vectors):
        """The state stack from the vectors, and its backward ``d_state -> d_vectors``."""
        pre, bridge_backward = self.bridge.forward(vectors)  # (B, L*H)
        h0 = np.tanh(pre)
        batch = h0.shape[0]
        stack = h0.reshape(batch, self.num_layers, self.hidden_size).transpose(1, 0, 2)  # (L,B,H)
        state = _checks.with_first_part(stack, len(self.rnn.cell.state))

        def backward(d_state):
            d_stack = _checks.first_part(d_state)  # (L, B, H)
            d_h0 = d_stack.transpose(1, 0, 2).reshape(batch, -1)  # (B, L*H)
            return bridge_backward(d_h0 * (1.0 - h0**2))  # h0 = tanh(pre)

        return state, backward

    def forward(self, vectors, target):
        """Training path: ``(logits (T, B, V), backward)``; ``backward(d_logits) -> d_vectors``.

        ``target`` (T, B) int ids, each sequence ending with ``end_id`` (mask padding in the loss).
        """
        target = np.asarray(target)
        if target.ndim != 2 or target.dtype.kind not in "iu" or 0 in target.shape:
            raise UserError(f"target must be integer ids (T, B) with T, B >= 1, got {target.shape}")
        state, state_backward = self._initial_state(vectors)
        start = np.full((1, target.shape[1]), self.start_id, dtype=np.int64)
        inputs = np.concatenate([start, target[:-1]])  # (T, B): shifted right
        embedded, embedding_backward = self.embedding.forward(inputs)
        (output, _), rnn_backward = self.rnn.forward(embedded, state=state)
        logits, head_backward = self.head.forward(output)

        def backward(d_logits):
            d_embedded, d_state = rnn_backward(head_backward(d_logits))
            embedding_backward(d_embedded)
            return state_backward(d_state)

        return logits, single_use(backward)

    def __call__(self, vectors, target):
        """Inference: teacher-forced logits (T, B, V)."""
        logits, _ = self.forward(vectors, target)
        return logits

    def generate(self, vectors, max_length: int = 20, temperature=None, seed=None):
        """Token id lists (without ``end_id``) for each vector: argmax at each step when
        ``temperature`` is None, else drawn at that temperature from a generator seeded ``seed``.
        """
        state, _ = self._initial_state(vectors)
        rng = np.random.default_rng(seed)
        batch = _checks.first_part(state).shape[1]
        previous = np.full((1, batch), self.start_id, dtype=np.int64)  # (1, B): one step
        steps = []
        for _ in range(max_length):
            output, state = self.rnn(self.embedding(previous), state=state)
            logits = self.head(output[0])  # (B, V)
            if temperature is None:
                chosen = logits.argmax(axis=1)
            else:
                chosen = np.array([next_token(row, rng, temperature) for row in logits])
            steps.append(chosen)
            previous = chosen[None]
            if (np.stack(steps) == self.end_id).any(axis=0).all():
                break
        ids = np.stack(steps, axis=1)  # (B, steps)
        results = []
        for row in ids:
            ends = np.flatnonzero(row == self.end_id)
            results.append(row[: ends[0] if len(ends) else len(row)].tolist())
        return results
