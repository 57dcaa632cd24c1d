"""A SequenceRegressor as one ONNX graph: an output at every valid step.

Inputs: ``tokens`` (T, B) int64 or ``features`` (T, B, input_size) float32, in the model's own
units, and ``lengths`` (B,) int32 in [1, T]. Output: ``outputs`` (T, B, output_size), zero past
each sequence's length, as rnnkit's inference returns them.
"""

from __future__ import annotations

import numpy as np

from rnnkit.export._graph import Graph, metadata
from rnnkit.export.classifier import encoder_inputs, linear, valid_steps
from rnnkit.export.recurrent import recurrent
from rnnkit.models.regressor import SequenceRegressor


def step_outputs(graph: Graph, model: SequenceRegressor, x: str, lengths: str) -> str:
    """``model``'s recurrent stack and head on ``x`` (T, B, I) float32, the stack's input
    (embedded or features), with ``lengths`` (B,) int32 in [1, T]: (T, B, output_size), zero
    past each length."""
    output, _ = recurrent(graph, model.encoder.rnn, x, lengths)
    valid = graph.node("Cast", [valid_steps(graph, output, lengths)], hint="valid", to=1)
    return graph.node("Mul", [linear(graph, model.head, output, "head"), valid], hint="outputs")


def build(model: SequenceRegressor) -> list:
    """The regressor as one graph (see the module's docstring)."""
    graph = Graph("SequenceRegressor")
    x, lengths = encoder_inputs(graph, model.encoder)
    outputs = step_outputs(graph, model, x, lengths)
    size = model.config()["output_size"]
    graph.output(outputs, "outputs", np.float32, ["time", "batch", size])
    return [("", graph.model(metadata(model)))]
