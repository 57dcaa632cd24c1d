"""Attention over encoder outputs: a query reads a weighted average (the context) of the keys.

Notation: keys k_s (S, B, K) are the encoder outputs, q (B, Q) the query (a decoder state),
``lengths`` (B,) the valid source steps of each example (masked steps get weight exactly 0).

    e_s = v . tanh(W_q q + W_k k_s + b)      "bahdanau" (additive; Bahdanau et al. 2015)
    e_s = q . W k_s                           "general"  (multiplicative; Luong et al. 2015)
    e_s = q . k_s                             "dot"      (Luong; needs Q == K, no parameters)
    w = softmax over valid s of e (stable: the largest valid score is subtracted first)
    context = sum_s w_s k_s                   (B, K)

Parameters (A = attention_size): bahdanau ``weight_query`` (A, Q), ``weight_key`` (A, K),
``bias`` (A,), ``v`` (A,); general ``weight`` (Q, K); dot none.

Two ways in. ``forward(query, keys, lengths)`` does everything for one query. A decoder that
queries the same keys at every step calls ``memory = attention.encode(keys, lengths)`` once (the
key projection W_k k is one product over all steps), ``attention.attend(query, memory)`` per
step, and ``memory.backward()`` once after all the steps' backwards, which returns d_keys.
"""

from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError
from rnnkit.nn import _checks
from rnnkit.nn.module import Module, amount, reserve, single_use

KINDS = ("bahdanau", "general", "dot")


class Memory:
    """The keys as one decoder pass sees them, with the gradients its steps accumulate.

    ``keys`` (S, B, K); ``projected`` (S, B, A) = W_k k + b for bahdanau, else None; ``valid``
    (S, B) bool. ``d_keys`` and ``d_projected`` gather the steps' gradients until ``backward``.
    """

    def __init__(self, attention, keys, projected, valid) -> None:
        self.attention, self.keys, self.projected, self.valid = attention, keys, projected, valid
        self.d_keys = np.zeros_like(keys)
        self.d_projected = None if projected is None else np.zeros_like(projected)

    def tile(self, repeats: int) -> Memory:
        """The memory of one example (B = 1) repeated ``repeats`` times along the batch, for beam
        search (inference only)."""
        projected = None if self.projected is None else np.repeat(self.projected, repeats, axis=1)
        return Memory(
            self.attention,
            np.repeat(self.keys, repeats, axis=1),  # (S, repeats, K)
            projected,
            np.repeat(self.valid, repeats, axis=1),
        )

    def backward(self) -> np.ndarray:
        """d_keys (S, B, K), once every step's backward has run; adds dW_k and db."""
        d_keys = self.d_keys.copy()
        if self.d_projected is not None:
            attention, S, B = self.attention, *self.keys.shape[:2]
            d_rows = self.d_projected.reshape(S * B, -1)  # (S*B, A)
            key_rows = self.keys.reshape(S * B, -1)  # (S*B, K)
            attention.grads["weight_key"] += d_rows.T @ key_rows  # projected = k W_k^T + b
            attention.grads["bias"] += d_rows.sum(axis=0)
            d_keys += (d_rows @ attention.params["weight_key"]).reshape(d_keys.shape)
        return d_keys


class Attention(Module):
    """Attention of a query (B, query_size) over keys (S, B, key_size); see the module docstring.

    Args:
        query_size, key_size: features of the query and of each key.
        kind: "bahdanau", "general" or "dot" ("dot" needs query_size == key_size).
        attention_size: A, the width of bahdanau's hidden layer (default: query_size).
        dtype: float32 or float64. seed: for the initial weights, U(-1/sqrt(n), 1/sqrt(n)) with
            n the fan-in, as ``Linear``.
    """

    def __init__(
        self,
        query_size: int,
        key_size: int,
        kind: str = "bahdanau",
        attention_size: int | None = None,
        *,
        dtype="float32",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        _checks.choice("Attention", "kind", kind, KINDS)
        attention_size = query_size if attention_size is None else attention_size
        _checks.sizes(
            "Attention", query_size=query_size, key_size=key_size, attention_size=attention_size
        )
        if kind == "dot" and query_size != key_size:
            raise UserError(
                f"Attention: kind='dot' needs query_size == key_size, got {query_size} and "
                f"{key_size}; use kind='general' to compare vectors of different sizes"
            )
        self._dtype = _checks.float_dtype("Attention", dtype)
        self.query_size, self.key_size = int(query_size), int(key_size)
        self.kind, self.attention_size = kind, int(attention_size)
        A, Q, K = self.attention_size, self.query_size, self.key_size
        count = {"bahdanau": A * (Q + K + 2), "general": Q * K, "dot": 0}[kind]
        reserve(count, self._dtype, f"Attention({amount(Q)}, {amount(K)}, {kind!r})")
        rng = _checks.generator("Attention", seed)

        def uniform(shape, fan_in):
            bound = 1.0 / np.sqrt(fan_in)
            return rng.uniform(-bound, bound, shape).astype(self._dtype)

        if kind == "bahdanau":
            self._add_param("weight_query", uniform((A, Q), Q))
            self._add_param("weight_key", uniform((A, K), K))
            self._add_param("bias", uniform((A,), K))
            self._add_param("v", uniform((A,), A))
        elif kind == "general":
            self._add_param("weight", uniform((Q, K), K))

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def config(self) -> dict:
        return {
            "query_size": self.query_size,
            "key_size": self.key_size,
            "kind": self.kind,
            "attention_size": self.attention_size,
            "dtype": self._dtype.name,
        }

    def encode(self, keys, lengths=None) -> Memory:
        """The keys (S, B, key_size) and their valid steps, ready for ``attend``."""
        keys = _checks.float_array(keys, "keys", self._dtype)
        if keys.ndim != 3 or keys.shape[2] != self.key_size or 0 in keys.shape:
            raise UserError(
                f"keys must have shape (S, B, key_size={self.key_size}) with S, B >= 1, got "
                f"{keys.shape}; pass the encoder outputs time-major"
            )
        steps, batch, _ = keys.shape
        lengths = _checks.sequence_lengths(lengths, batch, steps)
        valid = np.ones((steps, batch), dtype=bool)
        if lengths is not None:
            valid = np.arange(steps)[:, None] < lengths[None, :]  # (S, B)
        projected = None
        if self.kind == "bahdanau":
            rows = keys.reshape(steps * batch, self.key_size)  # (S*B, K)
            projected = rows @ self.params["weight_key"].T + self.params["bias"]  # (S*B, A)
            projected = projected.reshape(steps, batch, self.attention_size)  # (S, B, A)
        return Memory(self, keys, projected, valid)

    def attend(self, query, memory: Memory):
        """One query over the memory: ``((context (B, K), weights (B, S)), backward)``.

        ``backward(d_context, d_weights=None) -> d_query`` (B, Q); it adds the keys' share of the
        gradient to ``memory`` (read it with ``memory.backward()``) and the parameters' to
        ``self.grads``.
        """
        keys, valid = memory.keys, memory.valid
        steps, batch, _ = keys.shape
        query = _checks.float_array(query, "query", self._dtype)
        _checks.check_shape(
            query, (batch, self.query_size), "query", "(B, query_size)", "one query per example"
        )
        if self.kind == "bahdanau":
            hidden = np.tanh(memory.projected + query @ self.params["weight_query"].T)  # (S,B,A)
            scores = hidden @ self.params["v"]  # (S, B)
        else:
            probe = query if self.kind == "dot" else query @ self.params["weight"]  # (B, K)
            scores = np.einsum("sbk,bk->sb", keys, probe)  # (S, B)
        scores = np.where(valid, scores, -np.inf)
        exps = np.exp(scores - scores.max(axis=0))  # (S, B); masked steps exp(-inf) = 0
        weights = (exps / exps.sum(axis=0)).T  # (B, S)
        context = np.einsum("bs,sbk->bk", weights, keys)  # (B, K)

        def backward(d_context, d_weights=None):
            d_context = _checks.float_array(d_context, "d_context", self._dtype)
            _checks.check_shape(
                d_context, context.shape, "d_context", "(B, key_size)", "d(loss)/d(context)"
            )
            d_w = np.einsum("sbk,bk->bs", keys, d_context)  # context = sum_s w_s k_s
            if d_weights is not None:
                d_w = d_w + _checks.float_array(d_weights, "d_weights", self._dtype)
            memory.d_keys += weights.T[:, :, None] * d_context[None]  # (S, B, K)
            # softmax: de_s = w_s (dw_s - sum_r w_r dw_r); zero at masked steps (w_s = 0)
            d_scores = (weights * (d_w - (weights * d_w).sum(axis=1, keepdims=True))).T  # (S,B)
            if self.kind == "bahdanau":
                self.grads["v"] += np.einsum("sb,sba->a", d_scores, hidden)  # scores = h . v
                d_pre = d_scores[:, :, None] * self.params["v"] * (1.0 - hidden**2)  # (S,B,A)
                memory.d_projected += d_pre
                d_query_proj = d_pre.sum(axis=0)  # (B, A)
                self.grads["weight_query"] += d_query_proj.T @ query
                return d_query_proj @ self.params["weight_query"]
            d_probe = np.einsum("sb,sbk->bk", d_scores, keys)  # scores = k_s . probe
            memory.d_keys += d_scores[:, :, None] * probe[None]
            if self.kind == "dot":
                return d_probe
            self.grads["weight"] += query.T @ d_probe  # probe = q W
            return d_probe @ self.params["weight"].T

        return (context, weights), single_use(backward)

    def __call__(self, query, keys, lengths=None):
        """Inference: ``(context (B, K), weights (B, S))``."""
        (context, weights), _ = self.attend(query, self.encode(keys, lengths))
        return context, weights

    def forward(self, query, keys, lengths=None):
        """Training path for one query: ``((context, weights), backward)``, where
        ``backward(d_context, d_weights=None) -> (d_query, d_keys)``."""
        memory = self.encode(keys, lengths)
        result, step_backward = self.attend(query, memory)

        def backward(d_context, d_weights=None):
            d_query = step_backward(d_context, d_weights)
            return d_query, memory.backward()

        return result, single_use(backward)

    def __repr__(self) -> str:
        return f"Attention({self.query_size}, {self.key_size}, kind={self.kind!r})"
