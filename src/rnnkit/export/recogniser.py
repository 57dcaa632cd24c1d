"""A SpeechRecogniser as one ONNX graph: frames stacked inside the graph, then its regressor.

Inputs: ``frames`` (T, B, input_size) float32, log-mel frames time first, any T, and
``lengths`` (B,) int32 in [1, T], each utterance's frame count. Outputs: ``logits``
(ceil(T / stack), B, num_labels), zero past each output length, as rnnkit's inference returns
them, and ``output_lengths`` (B,) int32, ceil(lengths / stack). Label 0 is CTC's blank; the
metadata carries ``labels`` (index = label id), ``blank`` and ``stack``.
"""

from __future__ import annotations

import numpy as np

from rnnkit.export._graph import Graph, metadata
from rnnkit.export.classifier import valid_steps
from rnnkit.export.regressor import step_outputs
from rnnkit.models.recogniser import SpeechRecogniser


def _ceil_divided(graph: Graph, value: str, divisor: int, dtype, hint: str) -> str:
    """ceil(``value`` / ``divisor``) of a non-negative integer tensor of ``dtype``."""
    rounding = graph.constant(f"{hint}_rounding", np.array(divisor - 1, dtype))
    divisor = graph.constant(f"{hint}_divisor", np.array(divisor, dtype))
    raised = graph.node("Add", [value, rounding], hint=hint)
    return graph.node("Div", [raised, divisor], hint=hint)  # integer Div: floor, as >= 0


def stacked_frames(graph: Graph, frames: str, lengths: str, stack: int, features: int) -> str:
    """``rnnkit.models.recogniser.stack_frames`` in the graph, for any T: ``frames`` (T, B,
    ``features``) float32 with ``lengths`` (B,) int32 -> (ceil(T / stack), B, stack * features),
    the frames past each length read as zeros and T padded with zero frames up to a multiple of
    ``stack``."""
    zero = graph.constant("zero_frame", np.array(0.0, np.float32))
    kept = graph.node("Where", [valid_steps(graph, frames, lengths), frames, zero],
                      hint="kept_frames")  # fmt: skip  # (T, B, F)
    shape = graph.node("Shape", [frames], hint="frames_shape")
    steps = graph.node(
        "Slice",
        [shape, graph.constant("steps_start", np.array([0])),
         graph.constant("steps_end", np.array([1]))],
        hint="frame_steps",
    )  # fmt: skip  # [T] int64
    stacked_steps = _ceil_divided(graph, steps, stack, np.int64, "stacked_steps")  # [T']
    padded_steps = graph.node(
        "Mul", [stacked_steps, graph.constant("stack", np.array(stack))], hint="padded_steps"
    )  # [T' * stack]
    missing = graph.node("Sub", [padded_steps, steps], hint="missing_steps")  # [(-T) mod stack]
    pads = graph.node(
        "Concat",
        [graph.constant("pads_begin", np.array([0, 0, 0])), missing,
         graph.constant("pads_end", np.array([0, 0]))],
        hint="pads",
        axis=0,
    )  # fmt: skip  # [T, B, F at the start; T, B, F at the end]
    padded = graph.node("Pad", [kept, pads, zero], hint="padded_frames")  # (T' * stack, B, F)
    batch_first = graph.node("Transpose", [padded], hint="batch_first", perm=[1, 0, 2])
    # (B, T' * stack, F) -> (B, T', stack * F): each run of stack frames, in order, as one
    runs_shape = graph.constant("runs_shape", np.array([0, -1, stack * features]))
    runs = graph.node("Reshape", [batch_first, runs_shape], hint="runs")  # (B, T', stack * F)
    return graph.node("Transpose", [runs], hint="stacked_frames", perm=[1, 0, 2])  # (T', B, S*F)


def build(model: SpeechRecogniser, *, extra=None) -> list:
    """The recogniser as one graph (see the module's docstring).

    ``extra``: the JSON saved with the model (``rnnkit.io.models.load_with_extra``), checked as
    ``rnnkit evaluate`` checks it, for its label names; None: labels are named "0", "1", ..."""
    labels = [str(index) for index in range(model.num_labels)]
    if extra is not None:
        from rnnkit.tasks.speech import saved_data

        saved_data(model, extra)
        labels = extra["labels"]
    graph = Graph("SpeechRecogniser")
    frames = graph.input("frames", np.float32, ["time", "batch", model.input_size])
    lengths = graph.input("lengths", np.int32, ["batch"])
    stacked = stacked_frames(graph, frames, lengths, model.stack, model.input_size)
    output_lengths = _ceil_divided(graph, lengths, model.stack, np.int32, "stacked_lengths")
    logits = step_outputs(graph, model.frames, stacked, output_lengths)
    graph.output(logits, "logits", np.float32, ["output_time", "batch", model.num_labels])
    graph.output(output_lengths, "output_lengths", np.int32, ["batch"])
    properties = {
        "inputs": "frames (time, batch, input_size) float32, lengths (batch,) int32",
        "labels": labels,
        "blank": 0,
        "stack": model.stack,
    }
    return [("", graph.model(metadata(model, **properties)))]
