"""A long token stream cut for truncated BPTT, as char-rnn does.

The stream is split into ``batch_size`` contiguous strips, laid side by side (time-major). Window
``k`` covers steps ``[k * seq_len, (k + 1) * seq_len)`` of every strip; its targets are the same
steps shifted by one. Consecutive windows continue each strip, so the model's final state after
one window is the right initial state for the next.
"""

from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError


class TokenStream:
    """Windows of (inputs, targets), each (steps, batch_size) int64, over one pass of a stream."""

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int) -> None:
        ids = np.asarray(ids)
        strip_length = (len(ids) - 1) // batch_size  # tokens per strip, keeping one for targets
        if strip_length < 2:
            raise UserError(
                f"the text has {len(ids)} tokens, too few for batch size {batch_size}; "
                "give more text or a smaller --batch"
            )
        used = ids[: batch_size * strip_length + 1]
        self.inputs = used[:-1].reshape(batch_size, strip_length).T  # (strip_length, B)
        self.targets = used[1:].reshape(batch_size, strip_length).T  # (strip_length, B)
        self.seq_len = seq_len

    def __len__(self) -> int:
        return -(-self.inputs.shape[0] // self.seq_len)  # windows per pass, the last maybe short

    def window(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets of window ``index``, each (steps, batch_size)."""
        steps = slice(index * self.seq_len, (index + 1) * self.seq_len)
        return self.inputs[steps], self.targets[steps]
