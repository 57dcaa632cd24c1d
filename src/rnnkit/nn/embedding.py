"""A lookup table from token ids to learned vectors."""

from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError, UserTypeError
from rnnkit.nn import _checks
from rnnkit.nn.module import Module, _to_numpy, amount, reserve


class Embedding(Module):
    """``torch.nn.Embedding``: parameter ``weight`` (num_embeddings, embedding_dim), drawn from
    N(0, 1) as PyTorch does. Ids of any shape (...) -> vectors (..., embedding_dim).
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        *,
        dtype=np.float32,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        _checks.sizes("Embedding", num_embeddings=num_embeddings, embedding_dim=embedding_dim)
        dtype = _checks.float_dtype("Embedding", dtype)
        reserve(
            num_embeddings * embedding_dim, dtype,
            f"Embedding({amount(num_embeddings)}, {amount(embedding_dim)})",
        )  # fmt: skip
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        weight = _checks.generator("Embedding", seed).standard_normal(
            (self.num_embeddings, self.embedding_dim)
        )
        self._add_param("weight", weight.astype(dtype))

    def config(self) -> dict:
        return {
            "num_embeddings": self.num_embeddings,
            "embedding_dim": self.embedding_dim,
            "dtype": self.dtype.name,
        }

    def __call__(self, ids) -> np.ndarray:
        """Inference: vectors (..., embedding_dim) for integer ids (...)."""
        return self.params["weight"][self._checked_ids(ids)]

    def forward(self, ids):
        """Training path: ``(vectors, backward)``.

        Args:
            ids: integer array (...) with values in [0, num_embeddings).
        Returns:
            vectors: (..., embedding_dim);
            backward(d_vectors) -> None: adds each row of d_vectors (..., embedding_dim) to the
                gradient row of its id in ``self.grads['weight']`` (repeated ids add up). Ids are
                not differentiable, so there is no input gradient.
        """
        ids = self._checked_ids(ids)
        vectors = self.params["weight"][ids]  # (..., D)

        def backward(d_vectors) -> None:
            d_vectors = _checks.float_array(d_vectors, "d_vectors", self.dtype)
            _checks.check_shape(
                d_vectors, vectors.shape, "d_vectors", "(..., embedding_dim)",
                "pass d(loss)/d(vectors)",
            )  # fmt: skip
            rows = d_vectors.reshape(-1, self.embedding_dim)  # (N, D): one row per id
            np.add.at(self.grads["weight"], ids.reshape(-1), rows)

        return vectors, backward

    def _checked_ids(self, ids) -> np.ndarray:
        ids = _to_numpy(ids)
        if ids.dtype.kind not in "iu":
            raise UserTypeError(
                f"ids have dtype {ids.dtype}, but an Embedding looks up integer token ids; "
                "map tokens to ints first (e.g. with a Vocabulary) and pass an integer array"
            )
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            bad = ids.min() if ids.min() < 0 else ids.max()
            raise UserError(
                f"id {bad} is outside the vocabulary of {self.num_embeddings} embeddings "
                f"(valid ids 0..{self.num_embeddings - 1}); map unknown tokens to a reserved id "
                "or build the Embedding with a larger num_embeddings"
            )
        return ids

    def __repr__(self) -> str:
        return f"Embedding({self.num_embeddings}, {self.embedding_dim})"
