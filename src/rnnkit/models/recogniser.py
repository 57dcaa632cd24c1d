"""Speech recognition with CTC: acoustic frames in, label scores at every (subsampled) frame out.

Frames (log-mels, T, B, input_size) -> ``stack`` adjacent frames concatenated into one (time
subsampled by ``stack``) -> a recurrent stack, bidirectional by default -> dropout -> Linear at
every step: logits (T', B, num_labels), T' = ceil(T / stack). Train with
``rnnkit.train.ctc_loss`` on these logits and ``output_lengths(lengths)``; label 0 is CTC's blank
by convention of the speech task, which keeps the label names with the model file.
"""

from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError
from rnnkit.io._schema import _shown
from rnnkit.models.pooling import valid_steps
from rnnkit.models.regressor import SequenceRegressor
from rnnkit.nn import _checks
from rnnkit.nn.module import Module


def stack_frames(x: np.ndarray, lengths, stack: int):
    """Concatenate each run of ``stack`` frames into one, and the way back.

    Args:
        x: (T, B, F) frames, right-padded; frames past each length are read as zeros.
        lengths: (B,) ints, or None when every sequence has T frames.
        stack: frames per output frame, >= 1.
    Returns:
        stacked: (ceil(T / stack), B, stack * F), the frames of output step s being input frames
            s * stack ... s * stack + stack - 1 in order;
        backward(d_stacked) -> d_x (T, B, F), zero past each length.
    """
    steps, batch, features = x.shape
    stacked_steps = -(-steps // stack)  # ceil
    valid = valid_steps(lengths, steps, batch)[:, :, None]  # (T, B, 1)
    padded = np.zeros((stacked_steps * stack, batch, features), dtype=x.dtype)
    padded[:steps] = np.where(valid, x, 0)
    grouped = padded.reshape(stacked_steps, stack, batch, features)  # (T', stack, B, F)
    stacked = grouped.transpose(0, 2, 1, 3).reshape(stacked_steps, batch, stack * features)

    def backward(d_stacked: np.ndarray) -> np.ndarray:
        d_grouped = d_stacked.reshape(stacked_steps, batch, stack, features)  # (T', B, stack, F)
        d_padded = d_grouped.transpose(0, 2, 1, 3).reshape(stacked_steps * stack, batch, features)
        return np.where(valid, d_padded[:steps], 0)  # (T, B, F)

    return stacked, backward


class SpeechRecogniser(Module):
    """Per-frame label scores (logits) for CTC.

    Args:
        num_labels: 2 or more, the blank included.
        input_size: features per input frame (mel bands).
        stack: input frames per recurrent step (1: no subsampling).
        hidden_size, num_layers, cell (any registered cell), bidirectional: the recurrent stack.
        dropout: between recurrent layers and on their outputs (training).
        dtype: "float32" or "float64". seed: for the initial weights and dropout masks.
    """

    def __init__(
        self,
        num_labels: int,
        *,
        input_size: int,
        stack: int = 2,
        hidden_size: int = 128,
        num_layers: int = 2,
        cell: str = "gru",
        bidirectional: bool = True,
        dropout: float = 0.0,
        dtype="float32",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 2:
            raise UserError(
                f"num_labels must be a whole number >= 2 (the blank and a label), got "
                f"{_shown(num_labels)}"
            )
        _checks.sizes("SpeechRecogniser", input_size=input_size, stack=stack)
        self.num_labels, self.input_size, self.stack = num_labels, input_size, stack
        self.frames = self._add_child(
            "frames",
            SequenceRegressor(
                num_labels,
                input_size=stack * input_size,
                hidden_size=hidden_size,
                num_layers=num_layers,
                cell=cell,
                bidirectional=bidirectional,
                dropout=dropout,
                dtype=dtype,
                seed=seed,
            ),
        )
        self._config = {
            "num_labels": num_labels,
            "input_size": input_size,
            "stack": stack,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "cell": cell,
            "bidirectional": bool(bidirectional),
            "dropout": float(dropout),
        }

    def config(self) -> dict:
        return {**self._config, "dtype": self.dtype.name}

    def output_lengths(self, lengths) -> np.ndarray:
        """(B,) output frames of inputs of ``lengths`` frames: ceil(length / stack)."""
        return -(-np.asarray(lengths, dtype=np.int64) // self.stack)

    def _inputs(self, x, lengths):
        x = _checks.float_array(x, "x", self.dtype)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise UserError(
                f"x must be frames (T, B, {self.input_size}), got shape {x.shape}; give log-mel "
                f"frames with {self.input_size} bands, time first"
            )
        lengths = _checks.sequence_lengths(lengths, x.shape[1], x.shape[0])
        stacked, backward = stack_frames(x, lengths, self.stack)
        stacked_lengths = None if lengths is None else self.output_lengths(lengths)
        return stacked, stacked_lengths, backward

    def __call__(self, x, lengths=None) -> np.ndarray:
        """Inference: logits (ceil(T / stack), B, num_labels), zero past each output length."""
        stacked, stacked_lengths, _ = self._inputs(x, lengths)
        return self.frames(stacked, stacked_lengths)

    def forward(self, x, lengths=None):
        """Training path: ``(logits (T', B, num_labels), backward)``; ``backward(d_logits)``
        accumulates the parameter gradients and returns d(frames) (T, B, input_size)."""
        stacked, stacked_lengths, stack_backward = self._inputs(x, lengths)
        logits, frames_backward = self.frames.forward(stacked, stacked_lengths)

        def backward(d_logits):
            return stack_backward(frames_backward(d_logits))

        return logits, backward
