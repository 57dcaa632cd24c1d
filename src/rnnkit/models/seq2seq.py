"""Sequence to sequence: a recurrent encoder, a bridge, and an attentional decoder of cell steps.

Notation: source ids (S, B) with ``source_lengths``, target ids (T, B) with ``target_lengths``
(each target ends with ``end_id``; the decoder's first input is ``start_id``), E the embeddings,
H the decoder's hidden size, K the encoder's output size (H_enc * directions).

    keys, final = encoder(E_src x)                          keys (S, B, K), final h (L*D, B, H_enc)
    h_0 = tanh(W_b [final h of the last layer, both directions] + b_b)      the bridge, (B, H)
    (an LSTM decoder's c_0 is zero: the bridge maps the encoder's h only)
    a_0 = 0                                                                    (B, H)
    step t:  x_t = [E_tgt y_{t-1}; a_{t-1}]             input feeding (Luong et al. 2015)
             h_t = cell(x_t, state_{t-1})                                       (B, H)
             c_t, w_t = attention(h_t, keys, source_lengths)            (B, K), (B, S)
             a_t = tanh(W_c [h_t; c_t] + b_c)                            the attentional state
             logits_t = W_o a_t + b_o                                             (B, V_tgt)

With ``attention="none"`` there is no context and no feeding: a_t = h_t. The query is the new state
h_t for both attention kinds (Luong's order); "bahdanau" and "luong" differ in the score: additive
v . tanh(W_q h + W_k k) or multiplicative h . W k.

Teacher forcing: in training, y_{t-1} is the true previous token with probability
``teacher_forcing`` (per example and step, drawn from the model's seeded generator), else the
model's own previous argmax (a constant: no gradient flows through the choice).
"""

from __future__ import annotations

import numpy as np

from rnnkit import cells
from rnnkit.errors import UserError, UserTypeError
from rnnkit.nn import _checks
from rnnkit.nn.attention import Attention
from rnnkit.nn.cells import RecurrentCell
from rnnkit.nn.embedding import Embedding
from rnnkit.nn.linear import Linear
from rnnkit.nn.module import Module, single_use
from rnnkit.nn.recurrent import Recurrent

ATTENTIONS = {"bahdanau": "bahdanau", "luong": "general", "none": None}


MAX_BEAM = 100  # wider beams keep up to MAX_BEAM x vocabulary hypotheses a step for no gain


class Seq2Seq(Module):
    """Encoder-decoder over token ids; see the module docstring for the equations.

    Args:
        source_vocab, target_vocab: vocabulary sizes. start_id, end_id: target-side ids that
            start decoding and end a sequence.
        embedding_dim, hidden_size: sizes of the embeddings and of the encoder and decoder states.
        num_layers: encoder layers. bidirectional: a bidirectional encoder.
        cell: "rnn", "lstm" or "gru", for the encoder layer and the decoder cell.
        attention: "bahdanau", "luong" or "none".
        dtype, seed: parameters' dtype; seed for the initial weights and for teacher forcing.
    """

    def __init__(
        self,
        source_vocab: int,
        target_vocab: int,
        start_id: int,
        end_id: int,
        embedding_dim: int = 64,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        cell: str = "gru",
        attention: str = "luong",
        *,
        dtype="float32",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        _checks.choice("Seq2Seq", "cell", cell, cells.names())
        _checks.choice("Seq2Seq", "attention", attention, ATTENTIONS)
        _checks.sizes(
            "Seq2Seq", source_vocab=source_vocab, target_vocab=target_vocab,
            embedding_dim=embedding_dim, hidden_size=hidden_size, num_layers=num_layers,
        )  # fmt: skip
        _checks.flags("Seq2Seq", bidirectional=bidirectional)
        _checks.token_ids("Seq2Seq", target_vocab, start_id=start_id, end_id=end_id)
        self.source_vocab, self.target_vocab = source_vocab, target_vocab
        self.start_id, self.end_id = start_id, end_id
        self.embedding_dim, self.hidden_size = embedding_dim, hidden_size
        self.num_layers, self.bidirectional = num_layers, bool(bidirectional)
        self.cell, self.attention_kind = cell, attention
        self.state_parts = len(cells.get(cell).state)  # the decoder's: (h,), (h, c) ...
        seeds = _checks.generator("Seq2Seq", seed).integers(2**32, size=8)
        self.rng = np.random.default_rng(seeds[7])  # teacher forcing draws
        directions = 2 if bidirectional else 1
        key_size = hidden_size * directions
        feed = hidden_size if attention != "none" else 0
        add = self._add_child
        self.source_embedding = add(
            "source_embedding", Embedding(source_vocab, embedding_dim, dtype=dtype, seed=seeds[0])
        )
        self.target_embedding = add(
            "target_embedding", Embedding(target_vocab, embedding_dim, dtype=dtype, seed=seeds[1])
        )
        self.encoder = add(
            "encoder",
            Recurrent(
                cell, embedding_dim, hidden_size, num_layers, bidirectional=bidirectional,
                dtype=dtype, seed=seeds[2],
            ),
        )  # fmt: skip
        self.bridge = add("bridge", Linear(key_size, hidden_size, dtype=dtype, seed=seeds[3]))
        self.decoder = add(
            "decoder",
            RecurrentCell(cell, embedding_dim + feed, hidden_size, dtype=dtype, seed=seeds[4]),
        )
        self.attention = None
        if attention != "none":
            self.attention = add(
                "attention",
                Attention(hidden_size, key_size, ATTENTIONS[attention], dtype=dtype, seed=seeds[5]),
            )
            self.combine = add(
                "combine", Linear(hidden_size + key_size, hidden_size, dtype=dtype, seed=seeds[6])
            )
        self.output = add(
            "output", Linear(hidden_size, target_vocab, dtype=dtype, seed=seeds[6] + 1)
        )

    def config(self) -> dict:
        return {
            "source_vocab": self.source_vocab,
            "target_vocab": self.target_vocab,
            "start_id": self.start_id,
            "end_id": self.end_id,
            "embedding_dim": self.embedding_dim,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "cell": self.cell,
            "attention": self.attention_kind,
            "dtype": self.dtype.name,
        }

    # ------------------------------------------------------------------ encoder and bridge

    def _encode(self, source, source_lengths):
        """Keys (memory or None), the decoder's initial state, the initial feed and a backward
        ``(d_state0, d_keys or None) -> None``."""
        source = np.asarray(source)
        if source.ndim != 2 or 0 in source.shape:
            raise UserError(
                f"source must be ids of shape (S, B) with S, B >= 1, got {source.shape}; "
                "give at least one token per sequence, time-major"
            )
        vectors, embedding_backward = self.source_embedding.forward(source)
        (keys, final), encoder_backward = self.encoder.forward(vectors, source_lengths)
        final_h = _checks.first_part(final)  # (L*D, B, H)
        directions = 2 if self.bidirectional else 1
        last = final_h[-directions:]  # (D, B, H): the last layer's directions
        summary = last.transpose(1, 0, 2).reshape(last.shape[1], -1)  # (B, D*H)
        pre, bridge_backward = self.bridge.forward(summary)
        h0 = np.tanh(pre)  # (B, H)
        state0 = _checks.with_first_part(h0, self.state_parts)
        memory = None if self.attention is None else self.attention.encode(keys, source_lengths)
        feed0 = None if self.attention is None else np.zeros_like(h0)

        def backward(d_state0, d_feed0) -> None:
            d_h0 = _checks.first_part(d_state0)
            d_summary = bridge_backward(d_h0 * (1.0 - h0**2))  # h0 = tanh(pre)
            d_last = d_summary.reshape(-1, directions, self.hidden_size).transpose(1, 0, 2)
            d_final_h = np.zeros_like(final_h)  # (L*D, B, H)
            d_final_h[-directions:] = d_last
            d_final = _checks.with_first_part(d_final_h, self.state_parts)
            d_keys = np.zeros_like(keys) if memory is None else memory.backward()
            d_vectors, _ = encoder_backward(d_keys, d_final)
            embedding_backward(d_vectors)

        return memory, state0, feed0, single_use(backward)

    # ------------------------------------------------------------------ one decoder step

    def _step(self, previous, state, feed, memory):
        """One decoder step on ids ``previous`` (B,): ``(logits, state, feed, weights, backward)``
        with ``backward(d_logits, d_state, d_feed) -> (d_state_before, d_feed_before)``."""
        vectors, embedding_backward = self.target_embedding.forward(previous)  # (B, D)
        x = vectors if memory is None else np.concatenate([vectors, feed], axis=1)  # (B, D+H)
        state, cell_backward = self.decoder.forward(x, state)
        h = _checks.first_part(state)
        weights = None
        if memory is None:
            attentional, attend_backward, combine_backward = h, None, None
        else:
            (context, weights), attend_backward = self.attention.attend(h, memory)
            pre, combine_backward = self.combine.forward(np.concatenate([h, context], axis=1))
            attentional = np.tanh(pre)  # (B, H)
        logits, output_backward = self.output.forward(attentional)

        def backward(d_logits, d_state, d_feed):
            d_attentional = output_backward(d_logits)
            if d_feed is not None:
                d_attentional = d_attentional + d_feed  # a_t also feeds step t + 1
            if memory is None:
                d_h = d_attentional
            else:
                d_hc = combine_backward(d_attentional * (1.0 - attentional**2))  # (B, H+K)
                d_h = d_hc[:, : self.hidden_size] + attend_backward(d_hc[:, self.hidden_size :])
            d_new = _checks.with_first_part(d_h, self.state_parts, d_state)
            d_x, d_state_before = cell_backward(d_new)
            embedding_backward(d_x[:, : self.embedding_dim])
            d_feed_before = None if memory is None else d_x[:, self.embedding_dim :]
            return d_state_before, d_feed_before

        return logits, state, attentional if memory is not None else None, weights, backward

    # ------------------------------------------------------------------ training path

    def forward(self, source, source_lengths, target, teacher_forcing: float = 1.0):
        """Training path: ``(logits (T, B, V_tgt), backward)``; ``backward(d_logits)``
        accumulates every parameter gradient.

        ``source`` (S, B) ids with ``source_lengths`` (B,) or None; ``target`` (T, B) holds the
        tokens to predict (each ending with ``end_id``); padding past a target's length gets
        logits too: mask it in the loss (``target_mask``), which zeroes its gradient.
        """
        target = self._check_target(target, source)
        memory, state, feed, encode_backward = self._encode(source, source_lengths)
        steps, batch = target.shape
        previous = np.full(batch, self.start_id, dtype=np.int64)
        all_logits, backwards = [], []
        for t in range(steps):
            logits, state, feed, _, backward = self._step(previous, state, feed, memory)
            all_logits.append(logits)
            backwards.append(backward)
            teacher = target[t]
            if teacher_forcing < 1.0:
                use_teacher = self.rng.random(batch) < teacher_forcing
                teacher = np.where(use_teacher, teacher, logits.argmax(axis=1))
            previous = teacher
        logits = np.stack(all_logits)  # (T, B, V)

        def backward(d_logits) -> None:
            d_logits = _checks.float_array(d_logits, "d_logits", self.dtype)
            _checks.check_shape(
                d_logits, logits.shape, "d_logits", "(T, B, V)", "d(loss)/d(logits)"
            )
            d_state, d_feed = None, None
            for t in reversed(range(steps)):
                d_state, d_feed = backwards[t](d_logits[t], d_state, d_feed)
            encode_backward(d_state, d_feed)

        return logits, single_use(backward)

    def __call__(self, source, source_lengths, target):
        """Inference: teacher-forced logits (T, B, V_tgt), for the validation loss."""
        logits, _ = self.forward(source, source_lengths, target)
        return logits

    def _check_target(self, target, source) -> np.ndarray:
        target = np.asarray(target)
        if target.ndim != 2 or target.shape[0] == 0 or target.shape[1] != np.shape(source)[-1]:
            raise UserError(
                f"target must be ids of shape (T, B) with T >= 1 and the source's B, got "
                f"{target.shape} for a source of shape {np.shape(source)}"
            )
        if target.dtype.kind not in "iu":
            raise UserTypeError(f"target has dtype {target.dtype}; give integer token ids")
        return target

    # ------------------------------------------------------------------ decoding

    def greedy(self, source, source_lengths=None, max_length: int = 50):
        """The argmax decoding of each source: ``(ids, weights)``, lists of B sequences (without
        ``end_id``) and their attention weights (steps, source length) (None without attention)."""
        memory, state, feed, _ = self._encode(source, source_lengths)
        batch = np.shape(source)[1]
        previous = np.full(batch, self.start_id, dtype=np.int64)
        done = np.zeros(batch, dtype=bool)
        outputs, weight_steps = [], []
        for _ in range(max_length):
            logits, state, feed, weights, _ = self._step(previous, state, feed, memory)
            previous = logits.argmax(axis=1)
            outputs.append(previous)
            weight_steps.append(weights)
            done |= previous == self.end_id
            if done.all():
                break
        ids = np.stack(outputs, axis=1)  # (B, steps)
        results, attention = [], []
        sizes = np.full(batch, len(source)) if source_lengths is None else source_lengths
        for b, valid in enumerate(sizes):
            ends = np.flatnonzero(ids[b] == self.end_id)
            length = ends[0] if len(ends) else ids.shape[1]
            results.append(ids[b, :length].tolist())
            attention.append(
                None
                if memory is None
                else np.stack([w[b, :valid] for w in weight_steps[: length + 1]])
            )
        return results, attention

    def beam_search(self, source, source_length=None, beam: int = 5, max_length: int = 50,
                    alpha: float = 1.0):  # fmt: skip
        """The best of ``beam`` hypotheses for ONE source (S,) ids: ``(ids, weights)``.

        A finished hypothesis (one that produced ``end_id``; the end token counts in its length)
        is ranked by sum(log p) / length**alpha (alpha = 0: raw log-probability, favouring short
        outputs; alpha = 1: mean log-probability per token). The search stops when ``beam``
        hypotheses have finished or after ``max_length`` steps (unfinished ones then compete with
        their current length). ``beam=1`` is greedy decoding.
        """
        source = np.asarray(source).reshape(-1, 1)  # (S, 1)
        if not (1 <= beam <= MAX_BEAM and max_length >= 1):
            raise UserError(
                f"beam must be in [1, {MAX_BEAM}] and max_length >= 1, got {beam} and "
                f"{max_length}; try beam=5"
            )
        lengths = None if source_length is None else np.array([source_length])
        base, state, feed, _ = self._encode(source, lengths)
        live = [([], 0.0, [])]  # (ids, log-probability, attention rows), state rows in order
        finished = []  # (ids, log-probability, attention rows, length with the end token)
        for _ in range(max_length):
            memory = None if base is None else base.tile(len(live))
            previous = np.array([ids[-1] if ids else self.start_id for ids, _, _ in live])
            logits, state, feed, weights, _ = self._step(previous, state, feed, memory)
            shifted = logits - logits.max(axis=1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (k, V)
            totals = np.array([score for _, score, _ in live])[:, None] + log_probs  # (k, V)
            keep, next_live = [], []
            for flat in np.argsort(-totals, axis=None, kind="stable")[:beam]:
                row, token = divmod(int(flat), self.target_vocab)
                ids, _, rows = live[row]
                rows = rows + ([] if weights is None else [weights[row]])
                score = float(totals[row, token])
                if token == self.end_id:
                    finished.append((ids, score, rows, len(ids) + 1))
                else:
                    keep.append(row)
                    next_live.append((ids + [token], score, rows))
            if len(finished) >= beam or not next_live:
                next_live = []
                break
            live = next_live
            state = _select(state, keep)
            feed = None if feed is None else feed[keep]
        candidates = finished + [(ids, score, rows, len(ids)) for ids, score, rows in next_live]
        ids, _, rows, _ = max(candidates, key=lambda c: c[1] / max(c[3], 1) ** alpha)
        return ids, (np.stack(rows) if rows else None)


def target_mask(target_lengths, steps: int) -> np.ndarray:
    """(T, B) bool, True at the valid target positions t < length."""
    return np.arange(steps)[:, None] < np.asarray(target_lengths)[None, :]


def _select(state, rows: list[int]):
    """The rows ``rows`` of a state ``h`` or ``(h, c)``."""
    if isinstance(state, tuple):
        return tuple(part[rows] for part in state)
    return state[rows]
